/**
 * Erasing a tenant's objects from the region buckets (DESIGN §5 DELETE): every
 * object under `tenants/<id>/` — every incarnation, every generation — in
 * every bucket this process knows, then a fresh listing to prove none is left.
 *
 * Why the whole tenant prefix and not just the current incarnation: an older
 * incarnation of the same id (erased while a bucket was down, or by a build
 * that did not erase buckets) is that tenant's data too, and nothing else can
 * ever own keys under `tenants/<id>/` while the id's record is `erasing`
 * (the record holds the id, so the id cannot be re-created meanwhile).
 */
import { DomicileError, isDomicileError } from '@domicile/errors';
import type { ObjectStore } from '@domicile/object-store';
import { tenantPrefix } from '@domicile/replication';
import type { RegionBucket } from './region-buckets.ts';

/** What a sweep did. */
export interface SweepResult {
  /** Objects deleted, all regions together. */
  deleted: number;
  /** Objects deleted per region (every swept region is present, 0 included). */
  byRegion: Record<string, number>;
}

/** Options of {@link sweepTenantObjects}. */
export interface SweepOptions {
  /**
   * Leave `tenants/<id>/<incarnation>/` alone: the late sweep runs after the
   * record is gone, when the id may already belong to a new incarnation.
   */
  keepIncarnation?: string;
}

/** Delete-and-list rounds per bucket before a writer that keeps adding objects is reported. */
const ROUNDS = 3;

/**
 * Delete every object of `tenant` in each of `buckets` and verify with a fresh
 * listing. Every bucket is attempted even when one fails; then throws
 * REPLICATION_UNAVAILABLE (503, Retry-After) if a bucket could not be reached,
 * else INTERNAL if objects survived, naming the regions in `details.regions`.
 * Objects already deleted stay deleted, so calling again finishes the job.
 */
export async function sweepTenantObjects(buckets: readonly RegionBucket[], tenant: string, opts: SweepOptions = {}): Promise<SweepResult> {
  const prefix = tenantPrefix(tenant);
  const keep = opts.keepIncarnation === undefined ? undefined : `${prefix}${opts.keepIncarnation}/`;
  const settled = await Promise.allSettled(buckets.map((b) => sweepBucket(b.store, prefix, keep)));
  const byRegion: Record<string, number> = {};
  const unavailable: Array<{ region: string; err: unknown }> = [];
  const failed: Array<{ region: string; err: unknown }> = [];
  let deleted = 0;
  settled.forEach((s, i) => {
    const region = buckets[i]!.region;
    if (s.status === 'fulfilled') {
      byRegion[region] = s.value;
      deleted += s.value;
    } else if (isDomicileError(s.reason) && s.reason.code === 'REPLICATION_UNAVAILABLE') {
      unavailable.push({ region, err: s.reason });
    } else {
      failed.push({ region, err: s.reason });
    }
  });
  if (unavailable.length > 0) {
    const first = unavailable[0]!;
    throw new DomicileError(
      'REPLICATION_UNAVAILABLE',
      `Cannot erase tenant "${tenant}" from the bucket of ${unavailable.map((u) => u.region).join(', ')}: ${(first.err as Error).message} The tenant stays "erasing"; retry the DELETE.`,
      { tenant, regions: unavailable.map((u) => u.region), deletedSoFar: deleted },
      { cause: first.err },
    );
  }
  if (failed.length > 0) {
    const first = failed[0]!;
    const remaining = Object.fromEntries(failed.map((f) => [f.region, (f.err as { details?: { remaining?: unknown } }).details?.remaining ?? null]));
    throw new DomicileError(
      'INTERNAL',
      `Erasing tenant "${tenant}" left objects in the bucket of ${failed.map((f) => f.region).join(', ')}. The tenant stays "erasing"; retry the DELETE.`,
      { tenant, regions: failed.map((f) => f.region), remaining, deletedSoFar: deleted },
      { cause: first.err },
    );
  }
  return { deleted, byRegion };
}

/**
 * List → delete → list again, until a listing comes back empty (a late writer
 * may add objects meanwhile); objects under `keep` stay. Returns how many were
 * deleted; INTERNAL when objects survive every round.
 */
export async function sweepBucket(store: ObjectStore, prefix: string, keep: string | undefined): Promise<number> {
  let deleted = 0;
  let keys = await listKeys(store, prefix, keep);
  for (let round = 0; round < ROUNDS && keys.length > 0; round++) {
    await store.deleteMany(keys);
    deleted += keys.length;
    keys = await listKeys(store, prefix, keep);
  }
  if (keys.length > 0) {
    throw new DomicileError('INTERNAL', `${keys.length} objects under ${prefix} survived ${ROUNDS} deletions in ${store.describe()}.`, {
      store: store.describe(), remaining: keys.length,
    });
  }
  return deleted;
}

async function listKeys(store: ObjectStore, prefix: string, keep: string | undefined): Promise<string[]> {
  const keys: string[] = [];
  for await (const e of store.list(prefix)) if (keep === undefined || !e.key.startsWith(keep)) keys.push(e.key);
  return keys;
}
