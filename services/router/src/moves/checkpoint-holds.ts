/**
 * Checkpoint holds (docs/moves.md "Why checkpoints wait"): while a move
 * follows a shard's WAL it keeps a read transaction open on the source, so
 * SQLite cannot restart the log under it. A `wal_checkpoint(TRUNCATE)` would
 * then wait on that reader for the worker's whole busy timeout and stall the
 * tenant's queue. The replicator's pool is wrapped so that its checkpoints of
 * a held tenant are skipped (reported as `wal-changed`, after a short delay so
 * its loop does not spin) and its generation starts wait for the release.
 */
import type { MaintenanceOp, MaintenanceResult, ShardRef } from '@domicile/shard';

/** What the replicator needs from the pool (the replicator's `ReplicatorPool`). */
export interface MaintenancePool {
  maintenance(ref: ShardRef, job: MaintenanceOp): Promise<MaintenanceResult>;
  heldMaintenance?(ref: ShardRef, prepare: () => Promise<MaintenanceOp | null>, before?: () => Promise<void>): Promise<MaintenanceResult | null>;
}

/** Delay before a skipped checkpoint is answered: one replicator pass per this many ms at most. */
const SKIP_DELAY_MS = 25;

/** Per-tenant holds on replication checkpoints. */
export class CheckpointHolds {
  readonly #held = new Map<string, { count: number; released: Promise<void>; release: () => void }>();

  /** Hold `tenant`'s checkpoints until the returned function is called (idempotent). */
  hold(tenant: string): () => void {
    let h = this.#held.get(tenant);
    if (!h) {
      let release!: () => void;
      const released = new Promise<void>((r) => { release = r; });
      h = { count: 0, released, release };
      this.#held.set(tenant, h);
    }
    h.count++;
    const entry = h;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      entry.count--;
      if (entry.count === 0) {
        if (this.#held.get(tenant) === entry) this.#held.delete(tenant);
        entry.release();
      }
    };
  }

  /** True while `tenant` is held. */
  isHeld(tenant: string): boolean {
    return this.#held.has(tenant);
  }

  /** Wraps a pool for the replicator: checkpoints of held tenants are skipped, generation starts wait. */
  wrap(pool: MaintenancePool): MaintenancePool {
    return {
      // A held tenant (a move copies its WAL) takes no checkpoint at all, nor the work before one (`before`).
      ...(pool.heldMaintenance ? {
        heldMaintenance: (ref: ShardRef, prepare: () => Promise<MaintenanceOp | null>, before?: () => Promise<void>) =>
          (this.#held.has(ref.tenant) ? Promise.resolve(null) : pool.heldMaintenance!(ref, prepare, before)),
      } : {}),
      maintenance: async (ref, job) => {
        for (;;) {
          const h = this.#held.get(ref.tenant);
          if (!h) return pool.maintenance(ref, job);
          if (job.op === 'checkpoint') {
            await Promise.race([h.released, new Promise<void>((r) => setTimeout(r, SKIP_DELAY_MS).unref?.())]);
            if (this.#held.has(ref.tenant)) return { busy: 0, log: -1, checkpointed: -1, skipped: 'wal-changed' };
            continue;
          }
          await h.released;
        }
      },
    };
  }
}
