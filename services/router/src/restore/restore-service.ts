/**
 * Point-in-time restore (DESIGN §5 `POST /v1/tenants/:id/restore`, §8,
 * docs/restore.md): rebuild a tenant's database as of a txid or a time from
 * its current region's bucket — in place (a new generation follows) or `as` a
 * fork, a new tenant in the same region and residency.
 *
 * - Download, every checksum, `PRAGMA integrity_check` and the rewrite of
 *   Domicile's own rows run on a restore worker thread (restore-thread.ts),
 *   never on the event loop; the file is rebuilt beside the shard (same
 *   region directory: invariant 3).
 * - Both forms first ship what the node has committed, so the target may be
 *   any moment up to now and the old generation stays a complete history (a
 *   later restore can still reach any point of it).
 * - In place: the swap runs in `pool.exclusive` — requests sent meanwhile wait
 *   and then see the restored data (a pause, not an error). There the staged
 *   file gets txid = (the tenant's highest txid so far, the live file's
 *   included) + 1 (txids never reset, DESIGN §1). The replicator then begins
 *   a new generation (a fresh snapshot); the answer waits until it is stored.
 * - Fork: claim the new id (`creating`), restore into its shard path with its
 *   own identity (tenant, new incarnation, epoch 1) and no idempotency
 *   records, apply any newer stored migrations, activate.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { DomicileError } from '@domicile/errors';
import type { TenantRecord } from '@domicile/directory';
import { placeTenant } from '@domicile/policy';
import { chooseGeneration, listGenerations, type GenerationInfo, type GenerationRef, type RestoreTarget } from '@domicile/replication';
import { SHARD_FILE_SUFFIXES, type ShardRef } from '@domicile/shard';
import { newIncarnation, type Runtime } from '../runtime.ts';
import { applyStoredSchema } from '../schema/schema-jobs.ts';
import { assertTenantId, getLiveTenant } from '../tenant-service.ts';
import { claimRestore } from './restore-locks.ts';
import { RestoreThread, type RestoreThreadInit, type RestoredFile } from './restore-thread.ts';


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
  /** In place: how long the tenant's requests were held for the swap (ms); 0 for a fork. */
  pauseMs: number;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function parseTarget(req: RestoreRequest): RestoreTarget {
  if ((req.at === undefined) === (req.txid === undefined)) {
    throw new DomicileError('BAD_REQUEST', 'give exactly one of "at" (RFC 3339 time) or "txid"', { field: req.at === undefined ? 'at' : 'txid' });
  }
  if (req.txid !== undefined) return { txid: req.txid };
  // RFC 3339: a date, a time and an offset (Z or ±hh:mm); Date.parse alone accepts much more.
  if (!RFC3339.test(req.at!) || Number.isNaN(Date.parse(req.at!))) {
    throw new DomicileError('BAD_REQUEST', `"at" must be an RFC 3339 time such as 2025-06-01T12:00:00Z, got ${JSON.stringify(req.at!.slice(0, 40))}`, { field: 'at' });
  }
  return { time: Date.parse(req.at!) };
}

/** Where a restore runs: the tenant's region bucket (URL for the worker) and the generations of its incarnation there. */
interface Source {
  t: TenantRecord;
  bucketUrl: string;
  gens: GenerationInfo[];
  g: GenerationInfo;
  target: RestoreTarget;
}

/** Restore `id` per `req`; see the module comment. */
export async function restoreTenant(rt: Runtime, id: string, req: RestoreRequest, actor: string): Promise<RestoreAnswer> {
  assertTenantId(id);
  const target = parseTarget(req);
  if (req.as !== undefined) assertTenantId(req.as);
  if (req.as === id) throw new DomicileError('BAD_REQUEST', '"as" names the tenant itself; leave it out to restore in place', { field: 'as' });
  const t = await getLiveTenant(rt, id);
  if (t.state === 'moving' || rt.moves.running(id)) throw new DomicileError('MOVE_IN_PROGRESS', `tenant "${id}" is being moved; restore it after the move`, { tenant: id });
  const replicator = rt.replicator;
  if (!replicator) throw new DomicileError('REPLICATION_UNAVAILABLE', 'replication is off on this node (DOMICILE_REPLICATION=off): there are no backups to restore from', { committedLocally: false });
  const store = rt.bucketFor(t.region);
  const bucketUrl = rt.buckets.find((b) => b.region === t.region)?.source;
  if (!store || bucketUrl === undefined) throw new DomicileError('NODE_UNAVAILABLE', `this node knows no bucket for region "${t.region}"`, { region: t.region });
  const release = claimRestore(req.as === undefined ? [id] : [id, req.as]);
  const started = performance.now();
  const log = rt.log.child({ component: 'restore', tenant: id });
  try {
    const ref = rt.shardRef(t);
    // Ship what the node committed: any moment up to now is reachable, and the old generation stays whole.
    replicator.notify(ref);
    await replicator.waitDurable(ref).catch(() => {
      throw new DomicileError('REPLICATION_UNAVAILABLE', 'the region\'s bucket is unavailable: cannot complete the tenant\'s backup history before restoring', { committedLocally: false });
    });
    // The current incarnation's generations in this region: the current epoch's and earlier ones still here.
    const gens = (await listGenerations(store, t.id, t.incarnation)).filter((g) => g.epoch <= t.epoch);
    if (gens.length === 0) {
      throw new DomicileError('NOT_FOUND', `tenant "${id}" has no backup in region "${t.region}" yet (nothing shipped to its bucket)`, { tenant: id, region: t.region });
    }
    const g = chooseGeneration(gens, target, `region "${t.region}"`);
    log.info({ target: req.at ?? { txid: req.txid }, generation: g.generation, epoch: g.epoch, snapshotBytes: g.snapshots[0]?.size, fork: req.as }, 'restore started');
    const src: Source = { t, bucketUrl, gens, g, target };
    const answer = req.as === undefined ? await restoreInPlace(rt, src, ref) : await restoreAsFork(rt, src, req.as, actor);
    rt.audit.append({
      actor, action: 'tenant.restore', tenant: id, incarnation: t.incarnation,
      details: { target: req.at ?? { txid: req.txid }, txid: answer.txid, time: answer.time, generation: answer.generation, epoch: answer.epoch, region: t.region, ...(req.as !== undefined ? { as: req.as } : { newTxid: answer.newTxid }) },
    });
    rt.metrics.tenantOps.inc({ op: 'restore', region: t.region });
    log.info({ txid: answer.txid, newTxid: answer.newTxid, bytes: answer.bytes, pauseMs: answer.pauseMs, ms: Math.round(performance.now() - started), fork: req.as }, 'restore done');
    return answer;
  } catch (err) {
    log.warn({ code: (err as { code?: unknown }).code, ms: Math.round(performance.now() - started), fork: req.as }, 'restore failed');
    throw err;
  } finally {
    release();
  }
}

function threadInit(src: Source, outPath: string): RestoreThreadInit {
  const ref: GenerationRef = { tenant: src.t.id, incarnation: src.t.incarnation, epoch: src.g.epoch, generation: src.g.generation };
  const target = src.target === 'latest' ? 'latest' : 'txid' in src.target ? { txid: src.target.txid } : { time: Number(src.target.time) };
  return { bucketUrl: src.bucketUrl, ref, target, outPath };
}

/** Remove `file` and whatever a restore left beside it (`<file>.restore-*.tmp` of a worker that died, `-wal`, `-shm`). */
function removeStaged(file: string): void {
  const dir = path.dirname(file);
  const base = path.basename(file);
  let names: string[] = [];
  try { names = readdirSync(dir); } catch { return; }
  for (const n of names) if (n === base || n.startsWith(`${base}.restore-`) || n === `${base}-wal` || n === `${base}-shm`) rmSync(path.join(dir, n), { force: true });
}

async function restoreInPlace(rt: Runtime, src: Source, ref: ShardRef): Promise<RestoreAnswer> {
  const { t, g, gens } = src;
  const replicator = rt.replicator!;
  const staged = `${ref.path}.restored-${randomBytes(6).toString('hex')}`;
  // Everything shipped so far is in the listing; the live file's own txid is read again at the swap.
  const highest = Math.max(replicator.status(t.id)?.lastTxid ?? 0, ...gens.map((x) => x.lastTxid));
  const thread = RestoreThread.start(threadInit(src, staged));
  try {
    const r = await thread.restored;
    // Ship the writes committed while the restore ran (the swap undoes them; the old generation keeps them), then
    // stop shipping the old file: a pass may be waiting for a checkpoint job, which would queue behind the swap.
    replicator.notify(ref);
    await replicator.waitDurable(ref).catch(() => undefined); // a bucket outage: the old generation ends earlier
    await replicator.stop(t.id);
    let pauseStart = 0;
    const newTxid = await rt.pool.exclusive(ref, async () => {
      pauseStart = performance.now();
      const now = await rt.directory.get(t.id);
      if (!now || now.incarnation !== t.incarnation || now.state === 'erasing') throw new DomicileError('TENANT_NOT_FOUND', `tenant "${t.id}" not found`, { tenant: t.id });
      if (now.epoch !== t.epoch || now.state !== 'active') throw new DomicileError('TENANT_MOVING', `tenant "${t.id}" changed hands during the restore; nothing was changed`, { tenant: t.id });
      // A write between the stop and the swap made a new shipper for the old file: stop it too, without waiting
      // (a shipper that still runs finds its WAL gone and begins a new generation from the restored file).
      void replicator.stop(t.id);
      // Above every txid the tenant had: the listing's, and the live file's (writes committed while the restore ran).
      const txid = await thread.finish({ txid: highest + 1, txidAbove: ref.path });
      for (const s of SHARD_FILE_SUFFIXES) if (s !== '') rmSync(ref.path + s, { force: true });
      renameSync(staged, ref.path);
      return txid;
    });
    const pauseMs = Math.round((performance.now() - pauseStart) * 10) / 10;
    // The replicator begins a new generation from the restored file; answer once it is in the bucket.
    replicator.notify(ref);
    await replicator.waitDurable(ref).catch((err: unknown) => {
      rt.log.warn({ tenant: t.id, err: String((err as Error)?.message ?? err) }, 'restore: the new generation is not in the bucket yet; it is shipped when the bucket returns');
      if (t.durability === 'sync') throw new DomicileError('REPLICATION_UNAVAILABLE', 'the tenant was restored on the node, but its new backup generation could not be stored yet', { committedLocally: true });
    });
    return { ...answerOf(t.id, r, g, newTxid, false), pauseMs };
  } finally {
    await thread.cancel();
    removeStaged(staged);
  }
}

async function restoreAsFork(rt: Runtime, src: Source, forkId: string, actor: string): Promise<RestoreAnswer> {
  const { t: source, g } = src;
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
  let thread: RestoreThread | undefined;
  try {
    // A file left by a crash between claim and activation belongs to no one.
    await rt.pool.erase(ref);
    mkdirSync(path.dirname(ref.path), { recursive: true });
    thread = RestoreThread.start(threadInit(src, ref.path));
    const r = await thread.restored;
    const txid = await thread.finish({ identity: { tenant: forkId, incarnation: record.incarnation, epoch: 1 }, clearIdempotency: true });
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
    await rt.replicator!.waitDurable(ref).catch((err: unknown) => {
      rt.log.warn({ tenant: forkId, err: String((err as Error)?.message ?? err) }, 'restore: the fork\'s first generation is not in the bucket yet; it is shipped when the bucket returns');
    });
    return { ...answerOf(forkId, r, g, txid, true), pauseMs: 0 };
  } catch (err) {
    await thread?.cancel();
    await rt.pool.erase(ref).catch(() => undefined);
    removeStaged(ref.path);
    await rt.directory.remove(record.id, record.incarnation).catch(() => undefined);
    throw err;
  } finally {
    await thread?.cancel();
  }
}

function answerOf(tenant: string, r: RestoredFile, g: GenerationInfo, newTxid: number, fork: boolean): Omit<RestoreAnswer, 'pauseMs'> {
  return { tenant, txid: r.txid, time: new Date(r.time).toISOString(), generation: g.generation, epoch: g.epoch, bytes: r.bytes, newTxid, fork };
}
