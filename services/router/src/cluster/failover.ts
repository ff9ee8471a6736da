/**
 * Failover (DESIGN §10, docs/cluster.md "Failover"): when a node's lease
 * expires, a surviving node of the same region claims each of its tenants
 * (Membership.claimTenant: atomic, only once the old lease is gone, epoch + 1
 * — raised above the highest epoch the region's bucket holds) and restores it
 * from the regional bucket, then the replicator begins a generation of the new
 * epoch. Several survivors may race: the claim lets exactly one win.
 *
 * Triggers: a departure seen by the membership watch (every renewal period),
 * and a slower sweep of the region (also right after joining) that catches
 * what a missed event or a crash in the middle of a takeover left behind: a
 * tenant of this node whose file is missing is restored again, at its epoch.
 *
 * A tenant with nothing in the bucket (replication off, or never shipped) is
 * not claimed: its only copy is on the dead node's disk, so it waits for that
 * node (503 NODE_UNAVAILABLE) rather than come back empty.
 *
 * Stale copies: when this node joins, every shard file in its region
 * directory whose tenant the directory gives to another node (or another
 * incarnation, or nobody) is moved to `<region dir>/stale/` — archived, not
 * served and not deleted: an async tenant's writes of the last lag window may
 * be there, for an operator to inspect.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { TenantRecord } from '@domicile/directory';
import { DomicileError } from '@domicile/errors';
import { chooseGeneration, listGenerations, type GenerationRef } from '@domicile/replication';
import { SHARD_FILE_SUFFIXES, type ShardRef } from '@domicile/shard';
import { RestoreThread } from '../restore/restore-thread.ts';
import type { Runtime } from '../runtime.ts';
import type { ClusterNode } from './cluster-node.ts';

/** Options of {@link Failover}. */
export interface FailoverOptions {
  /** Full sweep of the region's tenants (ms). Default 30 s. */
  sweepIntervalMs?: number;
}

/** What a takeover did (logged, audited, returned for tests). */
export interface Takeover {
  tenant: string;
  fromNode: string;
  epoch: number;
  txid: number;
  ms: number;
}

/** Takes over the tenants of dead nodes of this node's region. */
export class Failover {
  readonly #rt: Runtime;
  readonly #cluster: ClusterNode;
  readonly #sweepMs: number;
  /** Tenants being restored here: requests for them get 503 NODE_UNAVAILABLE meanwhile. */
  readonly #recovering = new Set<string>();
  #stopWatch: (() => void) | undefined;
  #stopLost: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #settleTimer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(rt: Runtime, cluster: ClusterNode, opts: FailoverOptions = {}) {
    this.#rt = rt;
    this.#cluster = cluster;
    this.#sweepMs = opts.sweepIntervalMs ?? 30_000;
  }

  /** True while `tenant` is being restored on this node. */
  isRecovering(tenant: string): boolean {
    return this.#recovering.has(tenant);
  }

  /** After joining: archive stale copies, sweep once, then watch departures and sweep periodically. */
  start(): void {
    this.#archiveStale().catch((err: unknown) => this.#warn('archiving stale shard files failed', err));
    this.#schedule(() => this.#sweep());
    // Polled twice per renewal period: detection adds at most half a period to the lease's expiry.
    this.#stopWatch = this.#cluster.membership.watchNodes((e) => {
      if (e.type === 'left' && e.node.region === this.#cluster.region && e.node.id !== this.#cluster.id) {
        this.#rt.log.warn({ node: e.node.id, region: e.node.region }, 'failover: a node of this region lost its lease; taking over its tenants');
        this.#schedule(() => this.#sweep(e.node.id));
      }
    }, Math.max(100, Math.round(this.#cluster.membership.timing.renewIntervalMs / 2)));
    // A lost lease (frozen, cut off from Redis past the TTL): the node serves nothing (canWrite() is
    // false) until it has rejoined with a new lease and archived what peers took over meanwhile.
    this.#stopLost = this.#cluster.membership.onLeaseLost(() => {
      this.#rt.log.error({ node: this.#cluster.id }, 'this node lost its lease: it serves nothing until it has rejoined');
      this.#schedule(() => this.#rejoin());
    });
    const tick = () => {
      this.#timer = setTimeout(() => {
        this.#schedule(() => this.#sweep());
        tick();
      }, this.#sweepMs);
      this.#timer.unref();
    };
    tick();
  }

  /** Stops watching; waits for a takeover in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stopWatch?.();
    this.#stopLost?.();
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#settleTimer) clearTimeout(this.#settleTimer);
    await this.#running.catch(() => undefined);
  }

  /** Runs sweeps one at a time. */
  #schedule(fn: () => Promise<void>): void {
    this.#running = this.#running.then(() => (this.#closed ? undefined : fn())).catch((err: unknown) => this.#warn('failover sweep failed', err));
  }

  /**
   * Tenants of this region owned by a node without a lease (only `deadNode`'s
   * when given) are claimed and restored; tenants of this node without a file
   * are restored again.
   */
  async #sweep(deadNode?: string): Promise<void> {
    if (!this.#cluster.canWrite()) return;
    const live = new Set((await this.#cluster.membership.liveNodes(this.#cluster.region)).map((n) => n.id));
    let cursor: string | undefined;
    do {
      const page = await this.#rt.directory.list({
        limit: 500, ...(cursor ? { cursor } : {}), ...(deadNode ? { node: deadNode } : { region: this.#cluster.region }),
      });
      for (const t of page.tenants) {
        if (this.#closed || !this.#cluster.canWrite()) return;
        if (t.region !== this.#cluster.region || (t.state !== 'active' && t.state !== 'moving')) continue;
        if (t.node === this.#cluster.id) {
          if (!existsSync(this.#rt.shardRef(t).path)) await this.#guard(t, () => this.#restore(t, t.node));
        } else if (!live.has(t.node)) {
          if (this.#cluster.settling()) {
            this.#settleRetry();
            continue;
          }
          await this.#guard(t, () => this.#claimAndRestore(t));
        }
      }
      cursor = page.nextCursor;
    } while (cursor);
  }

  /** A sweep skipped claims while this node settled: sweep again once it has. */
  #settleRetry(): void {
    const t = this.#cluster.membership.timing;
    this.#sweepIn(t.ttlMs + t.renewIntervalMs);
  }

  /** A takeover failed (a bucket hiccup, say): try again after a couple of seconds, not at the next full sweep. */
  #retrySoon(): void {
    this.#sweepIn(2000);
  }

  #sweepIn(ms: number): void {
    if (this.#settleTimer || this.#closed) return;
    this.#settleTimer = setTimeout(() => {
      this.#settleTimer = undefined;
      this.#schedule(() => this.#sweep());
    }, ms);
    this.#settleTimer.unref();
  }

  async #guard(t: TenantRecord, fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.#warn('failover: taking over a tenant failed; retrying shortly', err, { tenant: t.id, node: t.node });
      this.#retrySoon();
    }
  }

  async #claimAndRestore(t: TenantRecord): Promise<void> {
    const store = this.#rt.bucketFor(t.region);
    if (!store || !this.#rt.replicator) {
      this.#rt.log.error({ tenant: t.id, node: t.node }, 'failover: no bucket for this region (replication off): the tenant waits for its node');
      return;
    }
    const gens = (await listGenerations(store, t.id, t.incarnation)).filter((g) => g.snapshots.length > 0);
    if (gens.length === 0) {
      this.#rt.log.error({ tenant: t.id, node: t.node }, 'failover: the tenant has no backup in its region\'s bucket: it waits for its node');
      return;
    }
    // Marked before the claim: from the moment the record names this node, requests must wait for the file.
    this.#recovering.add(t.id);
    try {
      const claim = await this.#cluster.membership.claimTenant(t.id, { incarnation: t.incarnation, epoch: t.epoch, node: t.node }, this.#cluster.id);
      if (!claim.claimed) return;
      let record = claim.record;
      // The highest known epoch wins (DESIGN §10): the bucket may know a later one than Redis (a Redis failover lost it).
      const bucketMax = Math.max(...gens.map((g) => g.epoch));
      if (bucketMax >= record.epoch) {
        const raised = await this.#rt.directory.compareAndSet(t.id, record, { epoch: bucketMax + 1 });
        if (!raised) return;
        record = raised;
      }
      await this.#restore(record, t.node);
    } finally {
      this.#recovering.delete(t.id);
    }
  }

  /** Restores `t`'s newest state from the region's bucket into its shard path here, stamped with its epoch. */
  async #restore(t: TenantRecord, fromNode: string): Promise<Takeover> {
    const started = performance.now();
    const store = this.#rt.bucketFor(t.region);
    const bucketUrl = this.#rt.buckets.find((b) => b.region === t.region)?.source;
    if (!store || bucketUrl === undefined) throw new DomicileError('NODE_UNAVAILABLE', `no bucket for region "${t.region}"`);
    const ref: ShardRef = this.#rt.shardRef(t);
    this.#recovering.add(t.id);
    const staged = `${ref.path}.failover-${randomBytes(6).toString('hex')}`;
    let thread: RestoreThread | undefined;
    try {
      const gens = (await listGenerations(store, t.id, t.incarnation)).filter((g) => g.epoch <= t.epoch);
      const g = chooseGeneration(gens, 'latest', `region "${t.region}"`);
      const gen: GenerationRef = { tenant: t.id, incarnation: t.incarnation, epoch: g.epoch, generation: g.generation };
      mkdirSync(path.dirname(ref.path), { recursive: true });
      thread = RestoreThread.start({ bucketUrl, ref: gen, target: 'latest', outPath: staged });
      const r = await thread.restored;
      await thread.finish({ identity: { tenant: t.id, incarnation: t.incarnation, epoch: t.epoch } });
      // Nothing serves this tenant here yet (it is recovering): put the file in place.
      for (const s of SHARD_FILE_SUFFIXES) rmSync(ref.path + s, { force: true });
      renameSync(staged, ref.path);
      if (t.state === 'moving') await this.#rt.directory.compareAndSet(t.id, t, { state: 'active' });
      const done: Takeover = { tenant: t.id, fromNode, epoch: t.epoch, txid: r.txid, ms: Math.round(performance.now() - started) };
      this.#rt.audit.append({
        actor: 'system', action: 'tenant.failover', tenant: t.id, incarnation: t.incarnation,
        details: { region: t.region, fromNode, toNode: this.#cluster.id, epoch: t.epoch, txid: r.txid, generation: g.generation, restoreMs: done.ms },
      });
      this.#rt.metrics.tenantOps.inc({ op: 'failover', region: t.region });
      this.#rt.log.info({ tenant: t.id, fromNode, epoch: t.epoch, txid: r.txid, ms: done.ms }, 'failover: tenant restored from the regional bucket and serving here');
      // A new generation of the new epoch, in this region's bucket.
      this.#rt.replicator?.notify(ref);
      return done;
    } finally {
      await thread?.cancel();
      rmSync(staged, { force: true });
      this.#recovering.delete(t.id);
    }
  }

  async #rejoin(): Promise<void> {
    for (let attempt = 0; !this.#closed; attempt++) {
      try {
        await this.#cluster.rejoin();
        await this.#archiveStale();
        this.#rt.log.info({ node: this.#cluster.id }, 'rejoined the cluster with a new lease');
        return;
      } catch (err) {
        this.#warn('rejoining the cluster failed; retrying', err);
        await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** Math.min(attempt, 5))));
      }
    }
  }

  /** Moves shard files this node does not own (any more) to `<region dir>/stale/`. */
  async #archiveStale(): Promise<void> {
    const node = this.#rt.nodeForRegion(this.#cluster.region);
    if (!node) return;
    const root = path.join(node.dir, 'shards');
    if (!existsSync(root)) return;
    for (const sub of readdirSync(root)) {
      const dir = path.join(root, sub);
      let names: string[];
      try { names = readdirSync(dir); } catch { continue; }
      for (const name of names) {
        if (!name.endsWith('.db')) continue;
        const tenant = name.slice(0, -3);
        const t = await this.#rt.directory.get(tenant);
        if (t && t.node === this.#cluster.id) continue;
        // Nothing of it is shipped or served any more: stop its shipper, close its handles, move it away.
        await this.#rt.replicator?.stop(tenant);
        const stale = path.join(node.dir, 'stale');
        mkdirSync(stale, { recursive: true });
        const stamp = `${Date.now()}`;
        const file = path.join(dir, name);
        await this.#rt.pool.exclusive({ tenant, incarnation: t?.incarnation ?? 'stale', epoch: t?.epoch ?? 0, path: file }, async () => {
          for (const s of SHARD_FILE_SUFFIXES) if (existsSync(file + s)) renameSync(file + s, path.join(stale, `${name}${s}.${stamp}`));
        });
        this.#rt.log.warn({ tenant, owner: t?.node ?? null, epoch: t?.epoch ?? null, archivedTo: stale }, 'a shard file this node no longer owns was archived (not served, not deleted)');
      }
    }
  }

  #warn(msg: string, err: unknown, extra: Record<string, unknown> = {}): void {
    this.#rt.log.warn({ ...extra, code: (err as { code?: unknown })?.code, err: String((err as Error)?.message ?? err) }, msg);
  }
}
