/**
 * Point-in-time restore (DESIGN §5 `POST /v1/tenants/:id/restore`, §8,
 * docs/restore.md): rebuild a tenant's database as of a txid or a time from
 * its current region's bucket — in place (a new generation follows) or `as` a
 * fork, a new tenant in the same region and residency.
 *
 * - The file is rebuilt beside the shard (same region directory: invariant 3)
 *   by the replication library, every object and page hash verified; the
 *   `PRAGMA integrity_check` and the rewrite of Domicile's own rows run in a
 *   worker thread (`verifyDatabaseInWorker`), never on the event loop.
 * - In place: what the node committed is shipped first (so the old
 *   generation stays a complete history and a later restore can still reach
 *   any point of it), the restored file gets txid = (highest txid so far) + 1
 *   (txids never reset, DESIGN §1), and the swap runs in `pool.exclusive`:
 *   requests sent meanwhile wait and then see the restored data (a pause, not
 *   an error). The replicator then begins a new generation (a fresh snapshot);
 *   the answer waits until it is in the bucket.
 * - Fork: claim the new id (`creating`), restore into its shard path with its
 *   own identity (tenant, new incarnation, epoch 1) and no idempotency
 *   records, apply any newer stored migrations, activate.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { DomicileError } from '@domicile/errors';
import type { TenantRecord } from '@domicile/directory';
import { placeTenant } from '@domicile/policy';
import { chooseGeneration, listGenerations, restore, verifyDatabaseInWorker, type RestoreFinish, type RestoreTarget } from '@domicile/replication';
import { SHARD_FILE_SUFFIXES, type ShardRef } from '@domicile/shard';
import { newIncarnation, type Runtime } from '../runtime.ts';
import { applyStoredSchema } from '../schema/schema-jobs.ts';
import { assertTenantId, getLiveTenant } from '../tenant-service.ts';

/** The route's body. */
export interface RestoreRequest {
  at?: string;
  txid?: number;
  as?: string;
}

/** The route's answer. */
export interface RestoreAnswer {
  /** The tenant that now holds the restored state (the fork's id with `as`). */
  tenant: string;
  /** The restored point: the last transaction at or before the target. */
  txid: number;
  /** Its commit time (RFC 3339). */
  time: string;
  /** The generation it was restored from, and its epoch. */
  generation: string;
  epoch: number;
  /** Size of the restored database. */
  bytes: number;
  /** In place: the txid the restored state carries from now on (above every earlier one). Fork: equal to `txid`. */
  newTxid: number;
  /** Restored into a new tenant (`as`). */
  fork: boolean;
}

/** Tenants with a restore running on this process (source ids and fork ids). */
const running = new Set<string>();

/** True while a restore of (or into) `tenant` runs on this process (moves refuse to start then). */
export function restoreRunning(tenant: string): boolean {
  return running.has(tenant);
}

function parseTarget(req: RestoreRequest): RestoreTarget {
  if ((req.at === undefined) === (req.txid === undefined)) {
    throw new DomicileError('BAD_REQUEST', 'give exactly one of "at" (RFC 3339 time) or "txid"', { field: req.at === undefined ? 'at' : 'txid' });
  }
  if (req.txid !== undefined) return { txid: req.txid };
  // RFC 3339: a date, a time and an offset (Z or ±hh:mm); Date.parse alone accepts much more.
  if (!/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(req.at!) || Number.isNaN(Date.parse(req.at!))) {
    throw new DomicileError('BAD_REQUEST', `"at" must be an RFC 3339 time such as 2025-06-01T12:00:00Z, got ${JSON.stringify(req.at!.slice(0, 40))}`, { field: 'at' });
  }
  return { time: Date.parse(req.at!) };
}

/** Restore `id` per `req`; see the module comment. */
export async function restoreTenant(rt: Runtime, id: string, req: RestoreRequest, actor: string): Promise<RestoreAnswer> {
  assertTenantId(id);
  const target = parseTarget(req);
  if (req.as !== undefined) assertTenantId(req.as);
  if (req.as === id) throw new DomicileError('BAD_REQUEST', '"as" names the tenant itself; leave it out to restore in place', { field: 'as' });
  const t = await getLiveTenant(rt, id);
  if (t.state === 'moving' || rt.moves.running(id)) throw new DomicileError('MOVE_IN_PROGRESS', `tenant "${id}" is being moved; restore it after the move`, { tenant: id });
  if (!rt.replicator) throw new DomicileError('REPLICATION_UNAVAILABLE', 'replication is off on this node (DOMICILE_REPLICATION=off): there are no backups to restore from', { committedLocally: false });
  const store = rt.bucketFor(t.region);
  if (!store) throw new DomicileError('NODE_UNAVAILABLE', `this node knows no bucket for region "${t.region}"`, { region: t.region });
  const locks = req.as === undefined ? [id] : [id, req.as];
  for (const l of locks) {
    if (running.has(l)) throw new DomicileError('RESTORE_IN_PROGRESS', `a restore of tenant "${l}" is running; wait for it`, { tenant: l });
  }
  for (const l of locks) running.add(l);
  const started = performance.now();
  const log = rt.log.child({ component: 'restore', tenant: id });
  try {
    const ref = rt.shardRef(t);
    if (req.as === undefined) {
      // Ship what the node committed: the old generation stays whole (a later restore can reach any point of it).
      rt.replicator.notify(ref);
      await rt.replicator.waitDurable(ref).catch(() => {
        throw new DomicileError('REPLICATION_UNAVAILABLE', 'the region\'s bucket is unavailable: cannot complete the tenant\'s backup history before restoring', { committedLocally: false });
      });
    }
    const gens = (await listGenerations(store, t.id, t.incarnation)).filter((g) => g.epoch <= t.epoch);
    if (gens.length === 0) throw new DomicileError('BACKUP_INVALID', `tenant "${id}" has no backup in region "${t.region}" yet`, { tenant: id, region: t.region });
    const g = chooseGeneration(gens, target, `region "${t.region}"`);
    log.info({ target: req.at ?? req.txid, generation: g.generation, fork: req.as }, 'restore started');
    const answer = req.as === undefined
      ? await restoreInPlace(rt, t, ref, g, gens, target)
      : await restoreAsFork(rt, t, req.as, g, target, actor);
    rt.audit.append({
      actor, action: 'tenant.restore', tenant: id, incarnation: t.incarnation,
      details: { target: req.at ?? { txid: req.txid }, txid: answer.txid, time: answer.time, generation: answer.generation, epoch: answer.epoch, region: t.region, ...(req.as !== undefined ? { as: req.as } : { newTxid: answer.newTxid }) },
    });
    rt.metrics.tenantOps.inc({ op: 'restore', region: t.region });
    log.info({ txid: answer.txid, bytes: answer.bytes, ms: Math.round(performance.now() - started), fork: req.as }, 'restore done');
    return answer;
  } finally {
    for (const l of locks) running.delete(l);
  }
}

async function restoreInPlace(
  rt: Runtime, t: TenantRecord, ref: ShardRef, g: { generation: string; epoch: number }, gens: readonly { lastTxid: number }[], target: RestoreTarget,
): Promise<RestoreAnswer> {
  const replicator = rt.replicator!;
  const store = rt.bucketFor(t.region)!;
  const staged = `${ref.path}.restored-${randomBytes(6).toString('hex')}`;
  // Everything shipped so far is in the listing (flushed above); the live txid cannot be higher.
  const highest = Math.max(replicator.status(t.id)?.lastTxid ?? 0, ...gens.map((x) => x.lastTxid));
  const newTxid = highest + 1;
  try {
    const r = await restore({
      store, ref: { tenant: t.id, incarnation: t.incarnation, epoch: g.epoch, generation: g.generation }, target, outPath: staged,
      verify: (p, txid) => verifyDatabaseInWorker(p, txid, { txid: newTxid } satisfies RestoreFinish),
    });
    // Stop shipping the old file first: a pass may be waiting for a checkpoint job, which would queue behind the swap.
    await replicator.stop(t.id);
    await rt.pool.exclusive(ref, async () => {
      // A write between the stop and the swap made a new shipper for the old file: stop it too, without waiting
      // (a shipper that still runs finds its WAL gone and begins a new generation from the restored file).
      void replicator.stop(t.id);
      for (const s of SHARD_FILE_SUFFIXES) if (s !== '') rmSync(ref.path + s, { force: true });
      renameSync(staged, ref.path);
    });
    // The replicator begins a new generation from the restored file; answer once it is in the bucket.
    replicator.notify(ref);
    await replicator.waitDurable(ref).catch((err: unknown) => {
      rt.log.warn({ tenant: t.id, err: String((err as Error)?.message ?? err) }, 'restore: the new generation is not in the bucket yet; it is shipped when the bucket returns');
      if (t.durability === 'sync') throw new DomicileError('REPLICATION_UNAVAILABLE', 'the tenant was restored on the node, but its new backup generation could not be stored yet', { committedLocally: true });
    });
    return { tenant: t.id, txid: r.txid, time: new Date(r.time).toISOString(), generation: g.generation, epoch: g.epoch, bytes: r.bytes, newTxid, fork: false };
  } finally {
    rmSync(staged, { force: true });
  }
}

async function restoreAsFork(
  rt: Runtime, source: TenantRecord, forkId: string, g: { generation: string; epoch: number }, target: RestoreTarget, actor: string,
): Promise<RestoreAnswer> {
  // The fork lives where the source does, under the same residency rules (a pin elsewhere is refused).
  const { region } = placeTenant(rt.policy, { id: forkId, residency: source.residency, region: source.region });
  const node = rt.nodeForRegion(region);
  if (!node) throw new DomicileError('NODE_UNAVAILABLE', `no live node serves region "${region}"`, { region });
  const record: TenantRecord = {
    id: forkId, incarnation: newIncarnation(), residency: source.residency, region, node: node.id, epoch: 1,
    state: 'creating', durability: source.durability, createdAt: new Date().toISOString(), tokensValidAfter: 0,
  };
  await rt.directory.create(record);
  const ref = rt.shardRef(record);
  const store = rt.bucketFor(source.region)!;
  try {
    // A file left by a crash between claim and activation belongs to no one.
    await rt.pool.erase(ref);
    mkdirSync(path.dirname(ref.path), { recursive: true });
    const identity = { tenant: forkId, incarnation: record.incarnation, epoch: 1 };
    const r = await restore({
      store, ref: { tenant: source.id, incarnation: source.incarnation, epoch: g.epoch, generation: g.generation }, target, outPath: ref.path,
      verify: (p, txid) => verifyDatabaseInWorker(p, txid, { identity, clearIdempotency: true }),
    });
    await applyStoredSchema(rt, ref);
    const active = await rt.directory.compareAndSet(forkId, record, { state: 'active' });
    if (!active) throw new DomicileError('INTERNAL', 'tenant record changed during the fork');
    rt.audit.append({
      actor, action: 'tenant.create', tenant: forkId, incarnation: record.incarnation,
      details: { residency: record.residency, region, node: node.id, epoch: 1, durability: record.durability, forkOf: source.id, txid: r.txid },
    });
    rt.metrics.tenantOps.inc({ op: 'create', region });
    // Its first generation starts now (a fresh snapshot in the region's bucket), not at its first write.
    rt.replicator!.notify(ref);
    await rt.replicator!.waitDurable(ref).catch(() => undefined);
    return { tenant: forkId, txid: r.txid, time: new Date(r.time).toISOString(), generation: g.generation, epoch: g.epoch, bytes: r.bytes, newTxid: r.txid, fork: true };
  } catch (err) {
    await rt.pool.erase(ref).catch(() => undefined);
    for (const s of ['', ...SHARD_FILE_SUFFIXES]) rmSync(ref.path + s, { force: true });
    await rt.directory.remove(record.id, record.incarnation).catch(() => undefined);
    throw err;
  }
}
