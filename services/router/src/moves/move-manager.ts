/**
 * Moves (DESIGN §9, docs/moves.md): the policy check, then the snapshot
 * handoff through a `MoveTransport` — warm copy, catch-up, fence, final
 * catch-up with checksum equality, directory compare-and-set to the new
 * region with epoch + 1, hand-off (held requests go on to the new primary),
 * the new generation in the target region's bucket, the purge of the old
 * region's bucket objects, the audit event. Any failure before the switch
 * aborts: the source unfences and serves on, the target deletes what it got.
 */
import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { NodeInfo, TenantRecord } from '@domicile/directory';
import { DomicileError, isDomicileError } from '@domicile/errors';
import type { ObjectStore } from '@domicile/object-store';
import { checkMove, explainMove, findResidency, type MoveExplanation } from '@domicile/policy';
import { generationsPrefix, listGenerations } from '@domicile/replication';
import { shardPath, type ShardRef } from '@domicile/shard';
import { sweepBucket } from '../buckets/bucket-eraser.ts';
import { restoreInProgress, restoreRunning } from '../restore/restore-locks.ts';
import type { LocalNode, Runtime } from '../runtime.ts';
import { assertTenantId, getLiveTenant } from '../tenant-service.ts';
import type { CheckpointHolds } from './checkpoint-holds.ts';
import { LocalMoveTransport, type LocalSourceDeps, type MoveTransport } from './move-transport.ts';
import { TenantGate } from './tenant-gate.ts';

/** Phases of a move, in order (DESIGN §5). */
export const MOVE_PHASES = ['pending', 'copying', 'catching-up', 'fenced', 'switching', 'purging', 'done', 'aborted'] as const;
export type MovePhase = (typeof MOVE_PHASES)[number];

/** `GET /v1/moves/:moveId`. */
export interface MoveStatus {
  moveId: string;
  tenant: string;
  from: string;
  to: string;
  node: string;
  phase: MovePhase;
  bytesCopied: number;
  bytesTotal: number;
  /** Fence → first write accepted on the target (null until known). */
  writePauseMs: number | null;
  error?: { code: string; message: string };
  epoch: { from: number; to: number };
  startedAt: string;
  finishedAt: string | null;
  /** Objects deleted from the old region's bucket (null: not purged). */
  purgedObjects: number | null;
}

/** Options of the manager (tests shorten the waits). */
export interface MoveManagerOptions {
  /** Grace period of open interactive transactions at the fence; default 1000 ms. */
  sessionGraceMs?: number;
}

/** Catch-up rounds before fencing at the latest, and "close behind" in pages. */
const MAX_CATCH_UP_ROUNDS = 50;
const CLOSE_BEHIND_PAGES = 64;
/** How long a finished move's status stays readable. */
const STATUS_TTL_MS = 3_600_000;

/** Where a move goes: a node of this process, or (cluster) a live node of another. */
interface MoveTargetNode {
  id: string;
  /** In this process: its region directory. */
  local?: LocalNode;
  /** In another process: where to reach it. */
  remote?: NodeInfo;
}

interface MoveRun {
  status: MoveStatus;
  target: MoveTargetNode;
  done: Promise<MoveStatus>;
  /** The failure of an aborted move, with its own code. */
  failure?: DomicileError;
  finishedAtMs?: number;
}

/** A tenant whose move is waiting for its first write on the target (writePauseMs). */
interface PauseWatch {
  epoch: number;
  path: string;
  fencedAt: number;
  firstWriteAt?: number;
}

/** Runs the moves of this process; one per tenant at a time. */
export class MoveManager {
  /** The data plane's per-tenant gate (routes await it before they resolve a shard). */
  readonly gate = new TenantGate();
  /** @internal Test hook: make the next moves fail at this phase (before the switch: pending … switching). */
  failAt: MovePhase | undefined;
  readonly #rt: Runtime;
  readonly #holds: CheckpointHolds;
  readonly #transport: MoveTransport;
  readonly #deps: LocalSourceDeps;
  readonly #runs = new Map<string, MoveRun>();
  readonly #byTenant = new Map<string, string>();
  readonly #sessionEnders: Array<(tenant: string, graceMs: number) => Promise<void>> = [];
  readonly #pauses = new Map<string, PauseWatch>();
  readonly #opts: Required<MoveManagerOptions>;

  constructor(rt: Runtime, holds: CheckpointHolds, opts: MoveManagerOptions = {}) {
    this.#rt = rt;
    this.#holds = holds;
    this.#opts = { sessionGraceMs: 1000, ...opts };
    this.#deps = {
      gate: this.gate,
      exclusive: (ref, fn) => rt.pool.exclusive(ref, fn),
      endSessions: async (tenant, now) => {
        await Promise.all(this.#sessionEnders.map((end) => end(tenant, now ? 0 : this.#opts.sessionGraceMs)));
      },
      holdCheckpoints: (tenant) => this.#holds.hold(tenant),
      stopReplication: async (tenant) => { await rt.replicator?.stop(tenant); },
      notifyTarget: (ref) => rt.replicator?.notify(ref),
      liveFiles: rt.pool,
    };
    this.#transport = new LocalMoveTransport(this.#deps);
  }

  /** What an in-process move source needs (internal-routes.ts serves the same source over HTTP). */
  sourceDeps(): LocalSourceDeps {
    return this.#deps;
  }

  /** The Hrana routes register how to end a tenant's open transactions at a fence. */
  onFence(endSessions: (tenant: string, graceMs: number) => Promise<void>): void {
    this.#sessionEnders.push(endSessions);
  }

  /** Moves running now (for /v1/status). */
  get inProgress(): number {
    return this.#byTenant.size;
  }

  /** The pool's `onCommit`: the first write on a moved tenant's new primary ends its write pause. */
  noteCommit(ref: ShardRef): void {
    const w = this.#pauses.get(ref.tenant);
    if (!w || w.firstWriteAt !== undefined || ref.epoch !== w.epoch || ref.path !== w.path) return;
    // The new primary starts without a -wal: a non-empty one means a write committed (a read leaves it empty).
    let size = 0;
    try { size = statSync(`${ref.path}-wal`).size; } catch { /* none yet */ }
    if (size > 0) w.firstWriteAt = performance.now();
  }

  /** The policy's decision for a move, explained (`--dry-run`); changes nothing. */
  async explain(id: string, to: unknown, node?: unknown): Promise<MoveExplanation & { tenant: string; from: string; to: string; node: string | null }> {
    assertTenantId(id);
    const t = await getLiveTenant(this.#rt, id);
    const e = explainMove(this.#rt.policy, t, to as string);
    const reasons = [...e.reasons];
    let allowed = e.allowed;
    let target: MoveTargetNode | undefined;
    if (allowed) {
      try {
        target = await this.#pickTarget(String(to), node === undefined ? undefined : String(node));
      } catch (err) {
        allowed = false;
        reasons.push(isDomicileError(err) ? err.message : String(err));
      }
    }
    if (allowed && this.#byTenant.has(id)) {
      allowed = false;
      reasons.push(`tenant ${id} is being moved right now`);
    }
    return { ...e, allowed, reasons, tenant: id, from: t.region, to: String(to), node: target?.id ?? null };
  }

  /**
   * The node a move to `to` goes to: this process's node of that region, or in
   * a cluster a live node of it (`node` if named, else one at random; 409
   * POLICY_MISMATCH while nodes disagree on the policy).
   */
  async #pickTarget(to: string, node?: string): Promise<MoveTargetNode> {
    const cluster = this.#rt.cluster;
    if (!cluster) {
      const local = this.#rt.nodeForRegion(to);
      if (!local) throw new DomicileError('NODE_UNAVAILABLE', `no live node serves region "${to}"`, { region: to });
      if (node !== undefined && node !== local.id) throw new DomicileError('BAD_REQUEST', `node "${node}" does not serve region "${to}" (its node: ${local.id})`, { field: 'node' });
      return { id: local.id, local };
    }
    await cluster.assertPolicyAgreed(this.#rt.policy.hash);
    const live = await cluster.liveNodes(to);
    if (live.length === 0) throw new DomicileError('NODE_UNAVAILABLE', `no live node serves region "${to}"`, { region: to });
    const pick = node === undefined ? live[Math.floor(Math.random() * live.length)]! : live.find((n) => n.id === node);
    if (!pick) throw new DomicileError('BAD_REQUEST', `node "${node}" is not a live node of region "${to}" (live: ${live.map((n) => n.id).join(', ')})`, { field: 'node' });
    return { id: pick.id, remote: pick };
  }

  /** True while a move of `tenant` is being checked or runs. */
  running(tenant: string): boolean {
    return this.#byTenant.has(tenant);
  }

  /**
   * Checks and starts a move; throws before anything changes when it may not
   * run (400, 404, 409 MOVE_IN_PROGRESS or RESTORE_IN_PROGRESS, 422 POLICY_VIOLATION, 503).
   */
  async start(id: string, req: { to: string; node?: string }, actor: string): Promise<{ moveId: string; done: Promise<MoveStatus> }> {
    assertTenantId(id);
    if (this.#byTenant.has(id)) throw inProgress(id);
    const moveId = randomUUID();
    // Claimed synchronously: a second request for the tenant meets this entry.
    this.#byTenant.set(id, moveId);
    try {
      const t = await getLiveTenant(this.#rt, id);
      if (t.state === 'moving') throw inProgress(id);
      if (restoreRunning(id)) throw restoreInProgress(id, 'move it afterwards');
      checkMove(this.#rt.policy, t, req.to);
      const targetNode = await this.#pickTarget(req.to, req.node);
      this.#rt.shardRef(t); // the source must be served here (NODE_UNAVAILABLE otherwise)
      const moving = await this.#rt.directory.compareAndSet(id, t, { state: 'moving' });
      if (!moving) throw new DomicileError('TENANT_MOVING', `tenant "${id}" changed hands; retry`, { tenant: id });
      const status: MoveStatus = {
        moveId, tenant: id, from: t.region, to: req.to, node: targetNode.id, phase: 'pending',
        bytesCopied: 0, bytesTotal: 0, writePauseMs: null, epoch: { from: t.epoch, to: t.epoch + 1 },
        startedAt: new Date().toISOString(), finishedAt: null, purgedObjects: null,
      };
      const run: MoveRun = { status, target: targetNode, done: Promise.resolve(status) };
      this.#runs.set(moveId, run);
      run.done = this.#run(run, moving, actor).finally(() => {
        this.#byTenant.delete(id);
        run.finishedAtMs = Date.now();
        status.finishedAt = new Date().toISOString();
        this.#expireOld();
      }).then(() => ({ ...status }));
      return { moveId, done: run.done };
    } catch (err) {
      if (this.#byTenant.get(id) === moveId) this.#byTenant.delete(id);
      throw err;
    }
  }

  /** A move's status; NOT_FOUND for unknown (or long finished) moves. */
  status(moveId: string): MoveStatus {
    const run = this.#runs.get(moveId);
    if (!run) throw new DomicileError('NOT_FOUND', `no move "${String(moveId).slice(0, 80)}"`);
    return { ...run.status };
  }

  /** The failure of an aborted move (its own code and status), if any. */
  failure(moveId: string): DomicileError | undefined {
    return this.#runs.get(moveId)?.failure;
  }

  /**
   * After a start: a move cannot survive a restart. Tenants left `moving` turn
   * `active` where they were (the switch is one compare-and-set, so they never
   * left), and partial copies in other regions are deleted.
   */
  async recover(): Promise<void> {
    let cursor: string | undefined;
    do {
      const page = await this.#rt.directory.list({ limit: 1000, ...(cursor ? { cursor } : {}) });
      for (const t of page.tenants) {
        // Only moves this process ran: in a cluster another node's move may be running right now.
        if (t.state !== 'moving' || ![...this.#rt.nodes.values()].some((n) => n.id === t.node)) continue;
        for (const node of this.#rt.nodes.values()) {
          if (node.region === t.region) continue;
          await removeMoveDebris(shardPath(node.dir, t.id));
        }
        await this.#rt.directory.compareAndSet(t.id, t, { state: 'active' });
        this.#rt.log.warn({ tenant: t.id, region: t.region }, 'a move was interrupted by a restart; the tenant stays where it was');
      }
      cursor = page.nextCursor;
    } while (cursor);
  }

  /** Waits for the running moves (shutdown). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#runs.values()].map((r) => r.done));
  }

  #check(phase: MovePhase): void {
    if (this.failAt === phase) throw new DomicileError('INTERNAL', `move failed at phase ${phase} (injected by a test)`, { phase });
  }

  async #run(run: MoveRun, t: TenantRecord, actor: string): Promise<void> {
    const rt = this.#rt;
    const m = run.status;
    const log = rt.log.child({ component: 'move', tenant: t.id, moveId: m.moveId });
    const targetNode = run.target;
    const source = rt.shardRef(t);
    // A remote target computes its own path; `path` then only keys the pause watch.
    const target: ShardRef = { tenant: t.id, incarnation: t.incarnation, epoch: t.epoch + 1, path: targetNode.local ? shardPath(targetNode.local.dir, t.id) : `remote:${targetNode.id}` };
    const ends = this.#transport.connect({
      moveId: m.moveId, source, target,
      targetBucket: rt.replicator && targetNode.local ? rt.bucketFor(m.to) : undefined,
      ...(targetNode.remote ? { remote: { url: targetNode.remote.url, nodeId: targetNode.id, clusterSecret: rt.config.clusterSecret ?? '' } } : {}),
    });
    let switched = false;
    let stoppedSource: Promise<unknown> = Promise.resolve();
    let fencedAt = 0;
    let gateOpenedAt = 0;
    // Where the fence's time goes (logged with the move): step → ms.
    const steps: Record<string, number> = {};
    let mark = 0;
    const step = (name: string) => { const now = performance.now(); steps[name] = Math.round((now - mark) * 100) / 100; mark = now; };
    try {
      this.#check('pending');
      m.phase = 'copying';
      const info = await ends.source.open();
      m.bytesTotal = info.bytes;
      await ends.target.begin(info);
      for await (const chunk of ends.source.snapshot()) {
        await ends.target.write(chunk);
        m.bytesCopied += chunk.byteLength;
      }
      this.#check('copying');

      m.phase = 'catching-up';
      const catchUp = async (publish: boolean) => {
        for (let round = 0; round < MAX_CATCH_UP_ROUNDS; round++) {
          const ch = await ends.source.changes();
          if (ch) {
            await ends.target.apply(ch);
            const bytes = ch.pageImages * info.pageSize;
            m.bytesCopied += bytes;
            m.bytesTotal += bytes;
          }
          if (publish) await ends.target.publish();
          if (!ch || ch.distinctPages <= CLOSE_BEHIND_PAGES) break;
        }
      };
      await catchUp(false);
      await ends.target.sync();
      // The pending generation (DESIGN §9 step 2): the copy as it stands is its snapshot; the
      // commits made meanwhile become its first segment; the fence then only adds the last ones.
      await ends.target.publish();
      await catchUp(true);
      this.#check('catching-up');

      m.phase = 'fenced';
      fencedAt = performance.now();
      mark = fencedAt;
      await ends.source.fence();
      step('fence');
      const last = await ends.source.changes();
      if (last) {
        await ends.target.apply(last);
        m.bytesCopied += last.pageImages * info.pageSize;
        m.bytesTotal += last.pageImages * info.pageSize;
      }
      step('finalCatchUp');
      const [s, d] = [await ends.source.state(), await ends.target.state()];
      if (s.checksum !== d.checksum || s.txid !== d.txid) {
        throw new DomicileError('INTERNAL', `move: the copy does not match the source (txid ${d.txid} vs ${s.txid})`);
      }
      this.#check('fenced');

      step('verify');
      m.phase = 'switching';
      await ends.target.finish(target.epoch);
      step('finish');
      // Not awaited inside the fence: stop() takes effect at once; an upload in flight ends before the purge.
      const stopping = ends.source.stopReplication().catch(() => undefined);
      step('stopReplication');
      this.#check('switching');
      const next = await rt.directory.compareAndSet(t.id, t, { region: m.to, node: m.node, epoch: target.epoch, state: 'active' });
      step('switch');
      if (!next) throw new DomicileError('TENANT_MOVING', `tenant "${t.id}" changed during the move`, { tenant: t.id });
      switched = true;
      stoppedSource = stopping;
      this.#pauses.set(t.id, { epoch: target.epoch, path: target.path, fencedAt });
      await ends.source.handOff();
      step('handOff');
      gateOpenedAt = performance.now();
      // The target resumes the pending generation now, not at the tenant's next write.
      await ends.target.activate().catch((err: unknown) => log.warn({ err: String((err as Error)?.message ?? err) }, 'move: activating the target failed; it resumes replication at its next write'));
    } catch (err) {
      if (switched) {
        // After the switch the move is done whatever happens: the target is the primary.
        log.error({ err }, 'move: hand-off after the switch failed');
        await ends.source.unfence().catch(() => undefined);
      } else {
        await this.#abort(run, t, ends, err, log);
        return;
      }
    }

    rt.metrics.tenantOps.inc({ op: 'move', region: m.to });
    const rule = findResidency(rt.policy, t.residency);
    const oldStore = rt.bucketFor(m.from);
    if ((rule?.purgeAfterMove ?? true) && oldStore) {
      m.phase = 'purging';
      try {
        await stoppedSource;
        // The new region's generation holds everything up to the epoch stamp since before the switch.
        m.purgedObjects = await sweepBucket(oldStore, generationsPrefix(t.id, t.incarnation), undefined);
      } catch (err) {
        log.warn({ err: String((err as Error)?.message ?? err) }, 'move: the old region\'s bucket objects were not purged; they age out with retention');
      }
    }
    const watch = this.#pauses.get(t.id);
    this.#pauses.delete(t.id);
    const pauseEnd = watch?.firstWriteAt ?? gateOpenedAt;
    m.writePauseMs = Math.max(0, Math.round((pauseEnd - fencedAt) * 100) / 100);
    rt.metrics.movePause.observe(m.writePauseMs / 1000);
    rt.metrics.moves.inc({ outcome: 'done' });
    m.phase = 'done';
    rt.audit.append({
      actor, action: 'tenant.move', tenant: t.id, incarnation: t.incarnation,
      details: {
        moveId: m.moveId, from: m.from, to: m.to, fromNode: t.node, toNode: m.node, oldEpoch: t.epoch, newEpoch: target.epoch,
        bytes: m.bytesCopied, writePauseMs: m.writePauseMs, purgedObjects: m.purgedObjects,
      },
    });
    if (watch?.firstWriteAt !== undefined) steps.firstWrite = Math.round((watch.firstWriteAt - gateOpenedAt) * 100) / 100;
    log.info({ from: m.from, to: m.to, bytes: m.bytesCopied, writePauseMs: m.writePauseMs, pauseSteps: steps }, 'tenant moved');
  }

  async #abort(run: MoveRun, t: TenantRecord, ends: ReturnType<MoveTransport['connect']>, err: unknown, log: Runtime['log']): Promise<void> {
    const m = run.status;
    const failure = isDomicileError(err) ? err : new DomicileError('INTERNAL', 'the move failed', {}, { cause: err });
    log.warn({ phase: m.phase, code: failure.code, err: failure.code === 'INTERNAL' ? String((err as Error)?.message ?? err) : undefined }, 'move aborted; the tenant stays where it was');
    await ends.source.unfence().catch((e: unknown) => log.error({ err: e }, 'move abort: unfence failed'));
    await ends.target.discard().catch((e: unknown) => log.error({ err: e }, 'move abort: deleting the partial copy failed'));
    await this.#rt.directory.compareAndSet(t.id, t, { state: 'active' }).catch((e: unknown) => log.error({ err: e }, 'move abort: directory reset failed'));
    run.failure = failure;
    m.error = { code: failure.code, message: failure.message };
    const at = m.phase;
    m.phase = 'aborted';
    this.#rt.metrics.moves.inc({ outcome: 'aborted' });
    this.#rt.audit.append({
      actor: 'system', action: 'tenant.move.abort', tenant: t.id, incarnation: t.incarnation,
      details: { moveId: m.moveId, from: m.from, to: m.to, epoch: t.epoch, phase: at, code: failure.code },
    });
  }

  #expireOld(): void {
    const now = Date.now();
    for (const [id, run] of this.#runs) if (run.finishedAtMs !== undefined && now - run.finishedAtMs > STATUS_TTL_MS) this.#runs.delete(id);
  }
}

function inProgress(id: string): DomicileError {
  return new DomicileError('MOVE_IN_PROGRESS', `tenant "${id}" is being moved already`, { tenant: id });
}

/** Deletes partial copies a move left beside `finalPath` (`<file>.move-<id>.tmp` and companions). */
async function removeMoveDebris(finalPath: string): Promise<void> {
  const dir = path.dirname(finalPath);
  const base = `${path.basename(finalPath)}.move-`;
  let names: string[];
  try { names = await readdir(dir); } catch { return; }
  for (const n of names) if (n.startsWith(base)) await rm(path.join(dir, n), { force: true });
}
