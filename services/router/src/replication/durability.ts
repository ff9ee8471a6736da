/**
 * Durability of a data-plane request (DESIGN §8). `async` tenants are
 * answered after the local commit. `sync` tenants are answered only once the
 * commit is in the region's bucket (`Replicator.waitDurable`: concurrent
 * writes share one upload); while the bucket is known to be down their writes
 * are refused before they run (503 REPLICATION_UNAVAILABLE, nothing
 * committed) — the request runs read-only, so reads keep working — and a
 * write whose upload fails after its commit answers REPLICATION_UNAVAILABLE
 * with `committedLocally: true`.
 */
import type { TenantDurability } from '@domicile/directory';
import { DomicileError, isDomicileError } from '@domicile/errors';
import type { ShardRef } from '@domicile/shard';
import type { Replicator } from './replicator.ts';

/** What a request needs to know to be durable. */
export interface DurableTarget {
  ref: ShardRef;
  durability: TenantDurability;
  /** The caller may only read (a read-scoped token). */
  readOnly: boolean;
}

/**
 * Run a request with the tenant's durability: `run(readOnly)` executes it
 * (with `readOnly` forced while a sync tenant's bucket is down) and tells
 * whether its answer was replayed from an Idempotency-Key record.
 */
export async function runDurable<T extends { replayed: boolean }>(replicator: Replicator | undefined, target: DurableTarget, run: (readOnly: boolean) => Promise<T>): Promise<T> {
  if (!replicator || target.durability !== 'sync' || target.readOnly) return run(target.readOnly);
  if (replicator.bucketDown(target.ref)) {
    let result: T;
    try {
      result = await run(true);
    } catch (err) {
      if (isDomicileError(err) && err.code === 'FORBIDDEN') throw bucketDown();
      throw err;
    }
    // A read needs no upload; a replayed Idempotency-Key answer may stand for a write that is still local only.
    if (result.replayed) await replicator.waitDurable(target.ref);
    return result;
  }
  const result = await run(false);
  await replicator.waitDurable(target.ref);
  return result;
}

/**
 * Hrana pipelines (several statements, maybe an interactive transaction):
 * before running, a sync tenant whose bucket is down is refused as a whole
 * (the pipeline may write; nothing has run); after running, everything the
 * pipeline committed — in autocommit or by a COMMIT inside a stream that
 * stays open — is waited for.
 */
export function refuseIfBucketDown(replicator: Replicator | undefined, target: DurableTarget): void {
  if (replicator && target.durability === 'sync' && !target.readOnly && replicator.bucketDown(target.ref)) throw bucketDown();
}

/** See {@link refuseIfBucketDown}: call after the pipeline ran. */
export async function awaitDurable(replicator: Replicator | undefined, target: DurableTarget): Promise<void> {
  if (!replicator || target.durability !== 'sync' || target.readOnly) return;
  // A COMMIT inside an interactive session is not reported by the pool until the session ends.
  replicator.notify(target.ref);
  await replicator.waitDurable(target.ref);
}

/** Refused before running: nothing was committed. */
export function bucketDown(): DomicileError {
  return new DomicileError('REPLICATION_UNAVAILABLE', 'the region\'s bucket is unavailable: this sync tenant accepts no writes until it returns (reads still work)', { committedLocally: false });
}
