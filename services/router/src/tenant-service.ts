import { DomicileError } from '@domicile/errors';
import type { TenantDurability, TenantRecord } from '@domicile/directory';
import { placeTenant } from '@domicile/policy';
import { sweepTenantObjects } from './buckets/bucket-eraser.ts';
import { restoreInProgress, restoreRunning } from './restore/restore-locks.ts';
import { newIncarnation, type Runtime } from './runtime.ts';
import { applyStoredSchema } from './schema/schema-jobs.ts';

/** Tenant ids (DESIGN §1); checked before any path is built from one. */
export const TENANT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Throws INVALID_TENANT_ID unless `id` is a valid tenant id. Never echoes control characters. */
export function assertTenantId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !TENANT_ID.test(id)) {
    const shown = typeof id === 'string' ? JSON.stringify(id.slice(0, 80)) : typeof id;
    throw new DomicileError('INVALID_TENANT_ID', `tenant id ${shown} must match ^[a-z0-9][a-z0-9_-]{0,62}$`);
  }
}

/** The public view of a tenant (DESIGN §5). */
export function tenantView(t: TenantRecord): Record<string, unknown> {
  return {
    id: t.id, residency: t.residency, region: t.region, node: t.node, epoch: t.epoch,
    state: t.state, durability: t.durability, createdAt: t.createdAt,
  };
}

/** Reads a tenant that is serving (or being moved); creating and erasing tenants do not exist yet / any more. */
export async function getLiveTenant(rt: Runtime, id: string): Promise<TenantRecord> {
  const t = await rt.directory.get(id);
  if (!t || t.state === 'creating' || t.state === 'erasing') {
    throw new DomicileError('TENANT_NOT_FOUND', `tenant "${id}" not found`, { tenant: id });
  }
  return t;
}

/** How long a creation waits for the replication backlog to shrink before it answers 503 OVERLOADED. */
export const CREATION_ADMISSION_WAIT_MS = 10_000;

/**
 * Creates a tenant: the policy places it, the directory record (state `creating`) claims the id,
 * the shard file is made, then the record turns `active`. A failure after the claim releases it.
 */
export async function createTenant(
  rt: Runtime,
  req: { id: string; residency: string; region?: string; durability?: TenantDurability },
  actor: string,
): Promise<TenantRecord> {
  assertTenantId(req.id);
  const { region } = placeTenant(rt.policy, { id: req.id, residency: req.residency, ...(req.region !== undefined ? { region: req.region } : {}) });
  const node = rt.nodeForRegion(region);
  if (!node) throw new DomicileError('NODE_UNAVAILABLE', `no live node serves region "${region}"`, { region });
  // Creation storms wait for replication to keep up: every new tenant starts a generation.
  if (rt.replicator && !(await rt.replicator.admitCreation(CREATION_ADMISSION_WAIT_MS))) {
    throw new DomicileError('OVERLOADED', 'replication is behind: new tenants wait until earlier ones have their first snapshot in the bucket', {
      replicationBacklog: rt.replicator.backlog, retryAfter: 1,
    });
  }
  const record: TenantRecord = {
    id: req.id, incarnation: newIncarnation(), residency: req.residency, region, node: node.id, epoch: 1,
    state: 'creating', durability: req.durability ?? rt.config.durability, createdAt: new Date().toISOString(), tokensValidAfter: 0,
  };
  await rt.directory.create(record);
  const ref = rt.shardRef(record);
  try {
    // A file left by a crash between claim and activation belongs to no one: clear it first.
    await rt.pool.erase(ref);
    await rt.pool.create(ref);
    // Every stored migration, before the tenant serves (DESIGN §5); a failing one fails the creation.
    await applyStoredSchema(rt, ref);
    const active = await rt.directory.compareAndSet(record.id, record, { state: 'active' });
    if (!active) throw new DomicileError('INTERNAL', 'tenant record changed during creation');
    rt.audit.append({ actor, action: 'tenant.create', tenant: record.id, incarnation: record.incarnation, details: { residency: record.residency, region, node: node.id, epoch: 1, durability: record.durability } });
    rt.metrics.tenantOps.inc({ op: 'create', region });
    return active;
  } catch (err) {
    await rt.pool.erase(ref).catch(() => undefined);
    await rt.directory.remove(record.id, record.incarnation).catch(() => undefined);
    throw err;
  }
}

/**
 * Erases a tenant: the record turns `erasing` (requests stop), the shard's files are deleted
 * (every handle closed first), then every object under `tenants/<id>/` in every region bucket
 * this process knows, verified gone by a fresh listing; only then is the record removed and
 * the audit event written, and a second sweep is scheduled one lease TTL later.
 * Resumable: a bucket failure (503 REPLICATION_UNAVAILABLE, or INTERNAL when objects survive)
 * leaves the record `erasing` (still holding the id), and calling again finishes the job.
 */
export async function eraseTenant(rt: Runtime, id: string, actor: string): Promise<{ files: number; bucketObjects: number; bucketRegions: string[] }> {
  const t = await rt.directory.get(id);
  if (!t || t.state === 'creating') throw new DomicileError('TENANT_NOT_FOUND', `tenant "${id}" not found`, { tenant: id });
  if (t.state === 'moving') throw new DomicileError('MOVE_IN_PROGRESS', `tenant "${id}" is being moved; erase it after the move`, { tenant: id });
  if (restoreRunning(id)) throw restoreInProgress(id, 'erase it afterwards');
  if (t.state !== 'erasing') {
    const marked = await rt.directory.compareAndSet(id, t, { state: 'erasing' });
    if (!marked) throw new DomicileError('TENANT_MOVING', `tenant "${id}" changed hands; retry`, { tenant: id });
  }
  // Stop shipping first: no upload may land after the sweep below.
  await rt.replicator?.stop(id);
  const { files } = await rt.pool.erase(rt.shardRef(t));
  await rt.replicator?.stop(id); // a request in flight during the first stop may have notified again
  // Buckets after the local files (a shipper stopped above uploads nothing more).
  let swept;
  try {
    swept = await sweepTenantObjects(rt.buckets, id);
  } catch (err) {
    rt.log.warn({ tenant: id, err }, 'erase incomplete: bucket objects remain; the tenant stays erasing until a retried DELETE finishes');
    throw err;
  }
  const bucketRegions = Object.keys(swept.byRegion);
  await rt.directory.remove(id, t.incarnation);
  rt.audit.append({ actor, action: 'tenant.erase', tenant: id, incarnation: t.incarnation, details: { region: t.region, files, bucketObjects: swept.deleted, bucketRegions } });
  rt.metrics.tenantOps.inc({ op: 'erase', region: t.region });
  rt.lateSweeps.schedule(id);
  return { files, bucketObjects: swept.deleted, bucketRegions };
}
