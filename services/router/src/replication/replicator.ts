/**
 * The replicator (DESIGN §8, docs/replication-format.md "Recommended
 * architecture"): one object on the main thread that drives every tenant's
 * `WalShipper` (through `Shippers`, shippers.ts: on the node they live on a
 * thread of their own). The pool reports each successful tenant request
 * (`onCommit`); the replicator then runs a pass of the tenant's shipper
 * (`SegmentPasses`, on the shipper's thread): its `-wal` is read (plain file
 * reads, no SQLite) and the new commits uploaded to the region's bucket as a
 * segment (in order, write-once; a failed pass is retried with capped
 * exponential backoff and the same bytes). Re-homing a tenant between SQLite workers
 * is free: the shipper never lives in one.
 *
 * Checkpoints and generation starts are jobs in the tenant's queue
 * (`pool.maintenance`), so they run between the tenant's writes: a generation
 * starts with `wal_checkpoint(TRUNCATE)` + a copy of the database file, the
 * copy is hashed and streamed as the snapshot before any segment. A WAL that
 * grew past `checkpointBytes` is checkpointed once everything in it is
 * acknowledged. Connections never checkpoint on close (guard.c
 * NO_CKPT_ON_CLOSE), so after a crash the `-wal` still holds the unshipped
 * frames and the first contact resumes the generation from the bucket's tip
 * (`readGenerationTip` + `WalShipper.resume`) before any checkpoint.
 *
 * Sync durability (`waitDurable`, used by replication/durability.ts): a
 * caller waits for the first pass that starts after the latest `notify`; a
 * pass captures every commit made before it started, so concurrent writers
 * share one upload. A failed upload marks the region's bucket down
 * (`bucketDown`) until an upload to it succeeds again.
 *
 * A generation start hashes the copy on the shippers' thread in slices
 * (`beginGenerationFromCopyAsync`): other tenants' captures wait at most one slice.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { DomicileError } from '@domicile/errors';
import type { ObjectStore } from '@domicile/object-store';
import {
  createSnapshot, generationTime, listGenerations, newGenerationId, pruneGenerations, putOnce, readGenerationTip, snapshotKey,
  type GenerationRef, type PassResult,
} from '@domicile/replication';
import type { LiveFileLender, MaintenanceOp, MaintenanceResult, ShardRef } from '@domicile/shard';
import { InProcessShippers, isShipperLost, type ShipperHandle, type Shippers } from './shippers.ts';

/** What the replicator needs from the shard pool. */
export interface ReplicatorPool {
  maintenance(ref: ShardRef, job: MaintenanceOp): Promise<MaintenanceResult>;
  /**
   * `ShardPool.heldMaintenance`: a checkpoint steady writes cannot starve (used when present). `before`
   * runs before the hold, and not at all when the hold is refused (a move's, moves/checkpoint-holds.ts).
   */
  heldMaintenance?(ref: ShardRef, prepare: () => Promise<MaintenanceOp | null>, before?: () => Promise<void>): Promise<MaintenanceResult | null>;
  /**
   * `ShardPool.borrowLiveFile` / `returnLiveFile`: descriptors of live database files for the default,
   * in-process shippers, when present (shippers.ts `LiveFileLender`).
   */
  borrowLiveFile?(file: { tenant: string; path: string }): number;
  returnLiveFile?(fd: number): void;
}

/** The smallest logger shape (pino fits). */
export interface ReplicatorLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ReplicatorOptions {
  pool: ReplicatorPool;
  /** The bucket of the region holding this shard (undefined: not replicated, logged once). */
  storeFor(ref: ShardRef): ObjectStore | undefined;
  log: ReplicatorLogger;
  /**
   * Checkpoint a tenant's WAL once it is this large and fully shipped, when
   * no write commits between the ship and the checkpoint (the tenant is not
   * held: under steady writes the attempt is skipped); default 4 MiB.
   */
  checkpointBytes?: number;
  /**
   * Past this size the tenant is held for the checkpoint (`heldMaintenance`:
   * its writes wait while the rest of its WAL is shipped), so steady writes
   * cannot grow the WAL without bound; default 8 × `checkpointBytes`.
   */
  checkpointForceBytes?: number;
  /** Backoff after a failure: `min(maxBackoffMs, baseBackoffMs × 2^(failures−1))`, ±20 % jitter. */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** Tenants shipping at the same time (bounds requests after a restart or an outage); default 8. */
  concurrency?: number;
  /**
   * DOMICILE_SNAPSHOT_INTERVAL: a tenant whose generation is older than this
   * starts a new one (a fresh snapshot) after its next shipped write; default 1 h.
   */
  snapshotIntervalMs?: number;
  /** DOMICILE_RETENTION: generations no longer needed to restore any moment of this window are deleted; default 7 days. */
  retentionMs?: number;
  /**
   * Least time between the starts of two passes of one tenant while nobody
   * waits for durability (async writes): commits arriving meanwhile share the
   * next segment, so a busy tenant costs at most ~1000/interval uploads a
   * second. A sync writer's wait starts the next pass at once. Default 500 ms
   * (DOMICILE_SHIP_INTERVAL).
   */
  shipIntervalMs?: number;
  /**
   * A tenant with nothing to ship for this long is forgotten (its shipper's
   * page hashes freed); its next write resumes from the bucket's tip, which
   * reads its file once on the shipper thread. Bounds memory on a node serving
   * many more tenants than are active. Default 60 s; a shard file over 64 MiB
   * is kept ten times longer (its resume costs more: ~0.3 s per 100 MB).
   */
  idleForgetMs?: number;
  /** Shard files larger than this are forgotten after 10 × `idleForgetMs`. Default 64 MiB. */
  largeShardBytes?: number;
  /** How often a bucket known to be down is probed; default 500 ms. */
  probeIntervalMs?: number;
  /**
   * Tenants waiting for a shipping slot above which new tenants wait to be
   * created (`admitCreation`): each new tenant starts a generation, and a
   * creation storm faster than the bucket takes snapshots would otherwise
   * pile up unprotected tenants (and their memory) without bound. Default 512.
   */
  maxBacklog?: number;
  now?: () => number;
  /**
   * Where the WAL shippers run (reading the `-wal`, hashing pages, encoding
   * segments); default on this thread. The node passes `ThreadShippers` (its
   * own worker thread). Closed by {@link Replicator.close}.
   */
  shippers?: Shippers;
  /** Told of every object stored (for metrics): its kind, size when known, and how long the upload took. */
  onUpload?: (ref: ShardRef, kind: 'segment' | 'snapshot', bytes: number | undefined, seconds: number) => void;
  /**
   * Metrics: a checkpoint of a shipped WAL ran (`quiet`: without holding the
   * tenant; `held`: with its writes paused for `pauseSeconds`), or an attempt
   * without holding was skipped because a write came in between (`skipped`).
   */
  onCheckpoint?: (ref: ShardRef, how: 'quiet' | 'held' | 'skipped', pauseSeconds: number) => void;
  /**
   * Flushes a tenant's `-wal` to disk without holding it (default {@link syncLogFile}): after each pass
   * that leaves the log past `checkpointBytes` (in the background), and just before its held
   * checkpoint (`when`: `ahead` and `hold`). The checkpoint's own fsync of the log then covers only
   * what was written since.
   */
  syncLog?: (walPath: string, when: 'ahead' | 'hold') => Promise<void>;
}

/**
 * `fdatasync` of a file, outside SQLite (the libuv pool; the event loop goes on). A missing file
 * is nothing to flush. The data reaches the disk a little earlier than the checkpoint would make
 * it; nothing else changes, so an error here is left for the checkpoint's own fsync to report.
 */
export async function syncLogFile(path: string): Promise<void> {
  let fh;
  try {
    fh = await open(path, 'r');
    await fh.datasync();
  } catch {
    // ENOENT (no log yet, or a TRUNCATE removed it), or an I/O error SQLite's fsync reports in the hold.
  } finally {
    await fh?.close().catch(() => {});
  }
}

/** Whether the pool lends descriptors of live files (a `ShardPool` does; test doubles may not). */
function lendsLiveFiles(pool: ReplicatorPool): pool is ReplicatorPool & LiveFileLender {
  return pool.borrowLiveFile !== undefined && pool.returnLiveFile !== undefined;
}

/** Replication state of one tenant, for `GET /v1/tenants/:id`. */
export interface ReplicationStatus {
  /** Age of the oldest commit not yet acknowledged by the bucket (0 when caught up). */
  lagMs: number;
  /** Last txid captured from the WAL (null before the generation started). */
  lastTxid: number | null;
  /** Last txid whose segment the bucket acknowledged. */
  replicatedTxid: number | null;
  /** Consecutive failures and the latest error, while failing. */
  failures: number;
  lastError?: string;
}

interface TenantRep {
  ref: ShardRef;
  store: ObjectStore;
  gen: GenerationRef | null;
  /** Creation time of `gen` (its snapshot's), for the snapshot schedule. */
  genStartedAt: number;
  shipper: ShipperHandle | null;
  /** Bytes of the current log the latest capture read (a checkpoint is considered past `checkpointBytes`). */
  walBytes: number;
  /** How much the log grew during the latest pass interval (predicts when it passes `checkpointForceBytes`). */
  walGrowth: number;
  dirty: boolean;
  running: Promise<void> | null;
  stopped: boolean;
  /** Passes started so far; a pass captures every commit made before it started. */
  startedSeq: number;
  /** The latest pass that completed (everything it captured is in the bucket). */
  doneSeq: number;
  /** The pass that will hold every commit notified so far (`startedSeq + 1` at the latest notification). */
  needSeq: number;
  /** Sync waiters (`waitDurable`): resolved when pass `need` completes, rejected when a pass fails. */
  durable: Array<{ need: number; resolve: () => void; reject: (err: unknown) => void }>;
  /** When the latest pass started (monotonic ms). */
  lastPassAt: number | undefined;
  /** Time of the oldest notification not covered by a completed pass. */
  oldest: number | undefined;
  /** First notification during the running pass. */
  newer: number | undefined;
  failures: number;
  lastError: string | undefined;
  wake: (() => void) | undefined;
  /** `flush` waits: the next passes skip the shipping interval until the tenant is idle. */
  flushing: boolean;
  idle: Array<() => void>;
  /** Set while waiting for a shipping slot: starts the pass (see `#acquire`). */
  queued: (() => void) | undefined;
  /** `-wal` size and mtime before the latest completed pass: a notification with the same is a read (nothing to ship). */
  walSig: string | undefined;
  /**
   * The `-wal` may be written in place: a checkpoint folded the log without
   * emptying the file (RESTART; or a TRUNCATE that a reader kept from
   * truncating, after which SQLite restarts the log at the next write), or
   * the shipper resumed a log it did not see begin. Commits then
   * overwrite old frames without growing the file, and a size and an mtime
   * (coarse: a clock tick) no longer tell a write from a read, so every
   * notification counts. A pass that finds nothing new tries a quiet
   * TRUNCATE, which ends this state and gives the disk back; an idle tenant
   * gets one such pass before it is forgotten.
   */
  inPlace: boolean;
  /** The `-wal`'s flush after a pass (`#syncAhead`), while it runs: one at a time per tenant. */
  logSync: Promise<void> | undefined;
}

function shardBytes(dbPath: string): number {
  try {
    return statSync(dbPath).size;
  } catch {
    return 0;
  }
}

function walSignature(dbPath: string): string {
  try {
    const st = statSync(`${dbPath}-wal`, { bigint: true });
    return `${st.size}:${st.mtimeNs}`;
  } catch {
    return 'none';
  }
}

/** Ships every tenant's WAL to its region's bucket; see the file comment. */
export class Replicator {
  readonly #o: Required<Omit<ReplicatorOptions, 'pool' | 'storeFor' | 'log' | 'onUpload' | 'onCheckpoint' | 'shippers'>> & Pick<ReplicatorOptions, 'pool' | 'storeFor' | 'log' | 'onUpload' | 'onCheckpoint'>;
  readonly #shippers: Shippers;
  readonly #tenants = new Map<string, TenantRep>();
  readonly #noBucketLogged = new Set<string>();
  /** Buckets whose latest upload failed (with no success since). */
  readonly #downStores = new Set<ObjectStore>();
  #active = 0;
  readonly #slots: Array<() => void> = [];
  /** Waiting for a slot too, served first: tenants with sync writers waiting. */
  readonly #urgent: Array<() => void> = [];
  /** `admitCreation` callers waiting for the backlog to shrink. */
  readonly #admissions: Array<() => void> = [];
  #closed = false;

  constructor(opts: ReplicatorOptions) {
    const checkpointBytes = opts.checkpointBytes ?? 4 << 20;
    this.#o = {
      checkpointBytes, checkpointForceBytes: 8 * checkpointBytes, baseBackoffMs: 200, maxBackoffMs: 5_000, concurrency: 8, maxBacklog: 512, now: Date.now,
      snapshotIntervalMs: 3_600_000, retentionMs: 7 * 86_400_000, shipIntervalMs: 500, idleForgetMs: 60_000, largeShardBytes: 64 << 20, probeIntervalMs: 500,
      syncLog: syncLogFile, ...opts,
    };
    this.#o.checkpointBytes = checkpointBytes;
    this.#o.checkpointForceBytes = Math.max(checkpointBytes, opts.checkpointForceBytes ?? 8 * checkpointBytes);
    this.#shippers = opts.shippers ?? new InProcessShippers(lendsLiveFiles(opts.pool) ? { liveFiles: opts.pool } : {});
    this.#sweeper = setInterval(() => this.#forgetIdle(), Math.max(50, Math.min(60_000, this.#o.idleForgetMs / 2)));
    this.#sweeper.unref?.();
  }

  readonly #sweeper: NodeJS.Timeout;

  /** Forget tenants idle for `idleForgetMs` with nothing pending (see the option). */
  #forgetIdle(): void {
    const now = performance.now();
    for (const [tenant, st] of this.#tenants) {
      if (st.running || st.dirty || st.failures > 0 || st.durable.length > 0 || st.idle.length > 0 || st.oldest !== undefined) continue;
      if (st.lastPassAt === undefined || now - st.lastPassAt < this.#o.idleForgetMs) continue;
      if (now - st.lastPassAt < 10 * this.#o.idleForgetMs && shardBytes(st.ref.path) > this.#o.largeShardBytes) continue;
      if (st.inPlace && st.shipper) {
        // Its -wal may still be as large as a RESTART checkpoint left it: one more pass, which finds
        // nothing new and so truncates it (`#maybeCheckpoint`); the tenant is forgotten a sweep later.
        st.dirty = true;
        this.#kick(st);
        continue;
      }
      this.#tenants.delete(tenant);
      st.stopped = true;
      st.shipper?.close();
      st.shipper = null;
    }
  }

  /** Tenants shipped at once at most (DOMICILE_SHIP_CONCURRENCY). */
  get concurrency(): number {
    return this.#o.concurrency;
  }

  /** Tenants this replicator holds state for (tests, metrics). */
  get trackedTenants(): number {
    return this.#tenants.size;
  }

  /** A tenant's WAL may have gained commits (the pool's `onCommit`). */
  notify(ref: ShardRef): void {
    if (this.#closed) return;
    let st = this.#tenants.get(ref.tenant);
    if (st && st.ref.incarnation !== ref.incarnation) {
      // A new incarnation under the same id: the old shipper belongs to erased files.
      void this.stop(ref.tenant);
      st = undefined;
    }
    if (!st) {
      const store = this.#o.storeFor(ref);
      if (!store) {
        if (!this.#noBucketLogged.has(ref.tenant)) {
          this.#noBucketLogged.add(ref.tenant);
          this.#o.log.warn({ tenant: ref.tenant }, 'no bucket for this shard\'s region: not replicated');
        }
        return;
      }
      st = {
        ref, store, gen: null, genStartedAt: 0, shipper: null, walBytes: 0, walGrowth: 0, dirty: false, running: null, stopped: false,
        oldest: undefined, newer: undefined, failures: 0, lastError: undefined, wake: undefined, flushing: false, queued: undefined, idle: [], walSig: undefined, inPlace: false,
        startedSeq: 0, doneSeq: 0, needSeq: 0, durable: [], lastPassAt: undefined, logSync: undefined,
      };
      this.#tenants.set(ref.tenant, st);
    }
    if (ref.epoch !== st.ref.epoch) st.ref = ref;
    // A read (or a refused write) leaves the -wal as it was: no pass, no lag.
    if (!st.running && !st.dirty && st.failures === 0 && !st.inPlace && st.walSig !== undefined && st.walSig === walSignature(ref.path)) return;
    const now = this.#o.now();
    st.oldest ??= now;
    if (st.running) st.newer ??= now;
    st.dirty = true;
    // Every commit made so far is captured by the next pass to start.
    st.needSeq = st.startedSeq + 1;
    this.#kick(st);
  }

  /**
   * Sync durability (DESIGN §8): resolves once every commit reported through
   * `notify` for this tenant so far is in the bucket. Concurrent callers share
   * one pass, so one upload acknowledges all of them. Rejects with 503
   * `REPLICATION_UNAVAILABLE` and `committedLocally: true` when the pass that
   * should carry the commits fails (the replicator keeps retrying; the writes
   * are shipped when the bucket returns). Resolves at once when nothing is
   * pending or when this shard is not replicated (no bucket, replication off).
   */
  waitDurable(ref: ShardRef): Promise<void> {
    const st = this.#tenants.get(ref.tenant);
    if (!st || st.stopped || st.ref.incarnation !== ref.incarnation) return Promise.resolve();
    if (st.doneSeq >= st.needSeq && !st.dirty && st.failures === 0) return Promise.resolve();
    // Still failing: say so now. (Once the bucket answers its probe again, the tenant's retry runs at once: wait for it.)
    if (st.failures > 0 && this.#downStores.has(st.store)) return Promise.reject(notShipped());
    return new Promise<void>((resolve, reject) => {
      st.durable.push({ need: st.needSeq, resolve, reject });
      st.wake?.(); // cut short the async shipping interval
      this.#promote(st); // and the queue for a slot
    });
  }

  /**
   * True while the bucket of this shard's region is known to be failing (the
   * latest upload to it failed and none succeeded since): sync tenants refuse
   * writes up front then. False when the shard is not replicated.
   */
  bucketDown(ref: ShardRef): boolean {
    const store = this.#o.storeFor(ref);
    return store !== undefined && this.#downStores.has(store);
  }

  /** Replication state of a tenant, or null when this process holds none (nothing written since start, or off). */
  status(tenant: string): ReplicationStatus | null {
    const st = this.#tenants.get(tenant);
    if (!st) return null;
    return {
      lagMs: st.oldest === undefined ? 0 : Math.max(0, this.#o.now() - st.oldest),
      lastTxid: st.shipper?.txid ?? null,
      replicatedTxid: st.shipper?.shippedTxid ?? null,
      failures: st.failures,
      ...(st.lastError !== undefined ? { lastError: st.lastError } : {}),
    };
  }

  /** The largest replication lag among the tenants of each group (`groupOf`: e.g. the tenant's region), in ms. */
  maxLagMsBy(groupOf: (ref: ShardRef) => string | undefined): Map<string, number> {
    const out = new Map<string, number>();
    const now = this.#o.now();
    for (const st of this.#tenants.values()) {
      const group = groupOf(st.ref);
      if (group === undefined) continue;
      const lag = st.oldest === undefined ? 0 : Math.max(0, now - st.oldest);
      out.set(group, Math.max(out.get(group) ?? 0, lag));
    }
    return out;
  }

  /**
   * Ship everything committed so far for every known tenant (one more pass
   * each) and wait, at most `timeoutMs`. Resolves true when every tenant
   * caught up.
   */
  async flush(timeoutMs = 30_000): Promise<boolean> {
    const waits = [...this.#tenants.values()].filter((st) => !st.stopped).map((st) => {
      st.dirty = true;
      st.flushing = true; // no shipping interval: ship now
      st.oldest ??= this.#o.now();
      if (st.running) st.newer ??= this.#o.now();
      this.#kick(st);
      if (st.wake) st.wake(); // skip a backoff sleep or the interval
      return new Promise<void>((r) => st.idle.push(r));
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), timeoutMs); timer.unref?.(); });
    const res = await Promise.race([Promise.all(waits).then(() => 'done' as const), timedOut]);
    clearTimeout(timer);
    return res === 'done' && [...this.#tenants.values()].every((st) => st.stopped || (st.oldest === undefined && st.failures === 0));
  }

  /** Stop a tenant's shipping (erase): wait for its current upload, drop its shipper. */
  async stop(tenant: string): Promise<void> {
    const st = this.#tenants.get(tenant);
    if (!st) return;
    st.stopped = true;
    st.wake?.();
    if (this.#tenants.get(tenant) === st) this.#tenants.delete(tenant);
    await st.running?.catch(() => undefined);
    await st.logSync;
    st.shipper?.close();
    st.shipper = null;
    for (const w of st.idle.splice(0)) w();
    for (const w of st.durable.splice(0)) w.reject(notShipped());
  }

  /** Stop every tenant (after a flush, at shutdown). */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweeper);
    await Promise.all([...this.#tenants.keys()].map((t) => this.stop(t)));
    await this.#shippers.close();
  }

  // ---- per tenant ----

  #kick(st: TenantRep): void {
    if (st.running || st.stopped) return;
    st.running = this.#loop(st).finally(() => {
      st.running = null;
      st.flushing = false;
      for (const w of st.idle.splice(0)) w();
      if (st.dirty && !st.stopped && !this.#closed) this.#kick(st);
    });
  }

  async #loop(st: TenantRep): Promise<void> {
    await this.#acquire(st);
    try {
      while (st.dirty && !st.stopped) {
        await this.#spaceOut(st);
        if (st.stopped) break;
        st.flushing = false; // this pass ships everything committed before the flush
        st.dirty = false;
        st.newer = undefined;
        const seq = ++st.startedSeq;
        st.lastPassAt = performance.now();
        const sig = walSignature(st.ref.path);
        try {
          // (No file descriptor per idle tenant: a shipper holds its database file only while it captures.)
          await this.#pass(st, seq);
          st.walSig = sig;
          st.failures = 0;
          st.lastError = undefined;
          st.oldest = st.newer;
          st.newer = undefined;
        } catch (err) {
          if (!existsSync(st.ref.path)) {
            // The shard is gone (erased, or never created here): nothing left to ship.
            st.dirty = false;
            st.oldest = undefined;
            if (this.#tenants.get(st.ref.tenant) === st) this.#tenants.delete(st.ref.tenant);
            st.stopped = true;
            st.shipper?.close();
            st.shipper = null;
            for (const w of st.durable.splice(0)) w.reject(notShipped());
            return;
          }
          if (isShipperLost(err)) {
            // The shipper thread died: resume from the bucket's tip (the -wal still holds every
            // unshipped frame; a captured, unstored segment is captured again). Not the bucket's fault.
            this.#o.log.warn({ tenant: st.ref.tenant, err: String((err as Error).message) }, 'shipper lost: resuming from the bucket tip');
            st.shipper = null;
            st.gen = null;
            st.dirty = true;
            st.failures++;
            st.lastError = String((err as Error).message);
            await this.#sleep(st, this.#backoff(st.failures));
            continue;
          }
          st.failures++;
          st.lastError = String((err as Error)?.message ?? err);
          st.dirty = true;
          if (!this.#downStores.has(st.store)) {
            this.#downStores.add(st.store);
            this.#o.log.warn({ tenant: st.ref.tenant, err: st.lastError }, 'bucket unavailable: sync tenants of its region refuse writes until it answers again');
            void this.#probe(st.store);
          }
          // Sync writers waiting on this tenant learn now that their commit is local only.
          for (const w of st.durable.splice(0)) w.reject(notShipped());
          const delay = this.#backoff(st.failures);
          this.#o.log.warn({ tenant: st.ref.tenant, failures: st.failures, retryInMs: delay, err: st.lastError }, 'replication failed; retrying');
          await this.#sleep(st, delay);
        }
      }
    } finally {
      this.#release();
    }
  }

  /**
   * While a bucket is down, one cheap request (`head` of a key that need not
   * exist) per `probeIntervalMs` — not one per tenant — tells when it is back:
   * it is then marked up and the tenants waiting out a backoff for it retry at
   * once (still at most `concurrency` at a time).
   */
  async #probe(store: ObjectStore): Promise<void> {
    while (this.#downStores.has(store) && !this.#closed) {
      await new Promise<void>((r) => setTimeout(r, this.#o.probeIntervalMs).unref?.());
      if (!this.#downStores.has(store) || this.#closed) return;
      try {
        await store.head('domicile-probe');
      } catch {
        continue;
      }
      if (this.#downStores.delete(store)) this.#o.log.info({ bucket: store.describe() }, 'bucket reachable again');
      for (const st of this.#tenants.values()) if (st.store === store && st.failures > 0) st.wake?.();
    }
  }

  /** Async shipping interval: wait until `shipIntervalMs` after the previous pass started, unless a sync writer or `flush` waits. */
  async #spaceOut(st: TenantRep): Promise<void> {
    if (st.lastPassAt === undefined || st.durable.length > 0 || st.flushing) return;
    const wait = this.#o.shipIntervalMs - (performance.now() - st.lastPassAt);
    if (wait > 0) await this.#sleep(st, wait);
  }

  /** Sleep `ms` (cut short by `st.wake`) without holding a shipping slot, so other tenants keep shipping. */
  async #sleep(st: TenantRep, ms: number): Promise<void> {
    this.#release();
    try {
      await new Promise<void>((r) => {
        const t = setTimeout(r, ms);
        st.wake = () => { clearTimeout(t); r(); };
      });
    } finally {
      st.wake = undefined;
      await this.#acquire(st);
    }
  }

  #backoff(failures: number): number {
    const base = Math.min(this.#o.maxBackoffMs, this.#o.baseBackoffMs * 2 ** Math.min(30, failures - 1));
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  /** Capture and upload everything committed (pass `seq`), release its sync waiters; then maybe checkpoint. */
  async #pass(st: TenantRep, seq: number): Promise<void> {
    if (!st.shipper) await this.#resumeOrBegin(st);
    // The log will pass the force size during this interval: this pass runs held and checkpoints, so
    // the hold costs no upload of its own (else a pass, then a hold shipping the few commits since).
    if (this.#forceDue(st) && await this.#heldCheckpoint(st, seq)) return;
    // One pass of the shipper holds every commit made before it started (after the segment a failed
    // pass left, if any). Commits arriving meanwhile go to the next pass — under steady writes a pass
    // ends, so sync waiters are answered and checkpoints get their turn.
    let quiet: boolean;
    for (;;) {
      if (st.stopped || !st.shipper) return;
      const r = await st.shipper.pass(st.store);
      this.#uploaded(st, r);
      if (r.kind !== 'restart') {
        st.walGrowth = Math.max(0, r.walBytes - st.walBytes);
        st.walBytes = r.walBytes;
        quiet = r.kind === 'none' && r.uploads.length === 0;
        break;
      }
      if (st.stopped) return; // a stopped shipper (restore, move, erase) starts nothing
      this.#o.log.warn({ tenant: st.ref.tenant, reason: r.reason }, 'WAL not continuous with the generation: starting a new one');
      st.shipper.close();
      st.shipper = null;
      st.gen = null;
      await this.#begin(st);
    }
    this.#passDone(st, seq);
    if (this.#o.now() - st.genStartedAt >= this.#o.snapshotIntervalMs && await st.shipper!.checkpointAllowed()) {
      await this.#rotate(st);
      return;
    }
    await this.#maybeCheckpoint(st, quiet);
    if (st.walBytes >= this.#o.checkpointBytes) this.#syncAhead(st);
  }

  /**
   * A log past `checkpointBytes` that is still there after the pass (a busy tenant: its unheld
   * checkpoint was skipped) goes to disk now, in the background, a pass at a time: its held
   * checkpoint fsyncs the whole `-wal` first, and the flush just before the hold (`#heldCheckpoint`)
   * would otherwise have all of it to write while that pass waits — ~30 ms per 8 MiB here, and the
   * tenant's lag grows by as much (RESULTS.md). The same bytes reach the disk, only earlier; the
   * tenant's writes and the next pass do not wait for it.
   */
  #syncAhead(st: TenantRep): void {
    if (st.logSync || st.stopped) return;
    st.logSync = this.#o.syncLog(`${st.ref.path}-wal`, 'ahead').catch(() => undefined).finally(() => { st.logSync = undefined; });
  }

  /** A pass's uploads: metrics, and the bucket answers again. */
  #uploaded(st: TenantRep, r: PassResult): void {
    for (const u of r.uploads) this.#o.onUpload?.(st.ref, 'segment', u.bytes, u.seconds);
    if (r.uploads.length > 0 && this.#downStores.delete(st.store)) this.#o.log.info({ tenant: st.ref.tenant }, 'bucket reachable again');
  }

  /** Pass `seq` stored everything it captured: release the sync waiters it covers. */
  #passDone(st: TenantRep, seq: number): void {
    st.doneSeq = Math.max(st.doneSeq, seq);
    if (st.durable.length === 0) return;
    const keep: TenantRep['durable'] = [];
    for (const w of st.durable) (w.need <= seq ? w.resolve() : keep.push(w));
    st.durable = keep;
  }

  /** First contact since this process started: continue the bucket's newest generation of this epoch, else begin one. */
  async #resumeOrBegin(st: TenantRep): Promise<void> {
    const { tenant, incarnation, epoch } = st.ref;
    const gens = (await listGenerations(st.store, tenant, incarnation)).filter((g) => g.epoch === epoch && g.snapshots.length > 0);
    const last = gens.at(-1);
    if (last) {
      const gen: GenerationRef = { tenant, incarnation, epoch, generation: last.generation };
      const tip = await readGenerationTip(st.store, gen);
      if (tip) {
        const shipper = await this.#shippers.resume({ dbPath: st.ref.path, ...gen }, tip);
        if (st.stopped) {
          // Stopped meanwhile (a restore or move swapping the file): ship nothing, begin nothing.
          shipper?.close();
          return;
        }
        if (shipper) {
          st.shipper = shipper;
          st.inPlace = true; // the log may be one a RESTART checkpoint folded before the node stopped
          st.gen = gen;
          st.genStartedAt = generationTime(gen.generation);
          this.#o.log.info({ tenant, generation: gen.generation, txid: tip.txid }, 'replication resumed from the bucket tip');
          return;
        }
        this.#o.log.warn({ tenant, generation: gen.generation, txid: tip.txid }, 'local files do not continue the bucket tip: beginning a new generation');
      }
    }
    await this.#begin(st);
  }

  /** Checkpoint + copy in the tenant's queue, hash the copy, stream it as the generation's snapshot. */
  async #begin(st: TenantRep): Promise<void> {
    const copy = `${st.ref.path}.snapshot-${randomBytes(6).toString('hex')}.tmp`;
    try {
      const res = await this.#o.pool.maintenance(st.ref, { op: 'snapshot-copy', dest: copy });
      // A stopped tenant (restore, move, erase) uploads no generation: the copy may be of a file swapped in since.
      if (st.stopped) return;
      st.inPlace = !res.copied; // copied: the checkpoint emptied the -wal; else it may have folded the log without emptying it
      if (!res.copied) throw new Error(`generation start: checkpoint not complete (${res.skipped ?? 'busy'})`);
      const gen: GenerationRef = { tenant: st.ref.tenant, incarnation: st.ref.incarnation, epoch: st.ref.epoch, generation: newGenerationId(this.#o.now()) };
      // Hashes the copy (on the shippers' thread, in ~2 MiB slices).
      const shipper = await this.#shippers.beginFromCopy({ dbPath: st.ref.path, ...gen }, copy);
      if (st.stopped) {
        shipper.close();
        return;
      }
      try {
        const snap = createSnapshot({ dbPath: copy, ...gen, checksum: shipper.checksum, pageHash: shipper.pageHash, time: this.#o.now() });
        try {
          const started = performance.now();
          await Promise.all([putOnce(st.store, snapshotKey(gen, snap.header.txid), snap.stream), snap.done]);
          this.#o.onUpload?.(st.ref, 'snapshot', undefined, (performance.now() - started) / 1000);
          this.#downStores.delete(st.store);
        } catch (err) {
          snap.stream.destroy();
          snap.done.catch(() => undefined);
          throw err;
        }
        this.#o.log.info({ tenant: gen.tenant, generation: gen.generation, txid: snap.header.txid }, 'replication generation started');
      } catch (err) {
        shipper.close();
        throw err;
      }
      if (st.stopped) {
        shipper.close();
        return;
      }
      st.shipper = shipper;
      st.gen = gen;
      st.genStartedAt = generationTime(gen.generation);
    } finally {
      await rm(copy, { force: true });
    }
  }

  /**
   * The snapshot schedule: everything is shipped, the generation is older than
   * the interval — start a new generation (checkpoint + snapshot; the WAL is
   * then empty, so restores replay short chains), then prune what fell out of
   * the retention window. A failed prune is logged and retried next time.
   */
  async #rotate(st: TenantRep): Promise<void> {
    const old = st.gen;
    st.shipper!.close();
    st.shipper = null;
    st.gen = null;
    await this.#begin(st);
    this.#o.log.info({ tenant: st.ref.tenant, previous: old?.generation, generation: (st.gen as GenerationRef | null)?.generation }, 'scheduled snapshot: new generation');
    try {
      const pruned = await pruneGenerations(st.store, st.ref.tenant, st.ref.incarnation, this.#o.now() - this.#o.retentionMs);
      if (pruned.generations > 0) this.#o.log.info({ tenant: st.ref.tenant, ...pruned }, 'retention: pruned generations');
    } catch (err) {
      this.#o.log.warn({ tenant: st.ref.tenant, err: String((err as Error)?.message ?? err) }, 'retention: pruning failed; retried at the next snapshot');
    }
  }

  /**
   * A large WAL whose every commit is acknowledged: checkpoint it through the
   * tenant's queue (docs/replication.md, "Checkpoints"). The size is the log's
   * as the pass read it (`walBytes`), not the file's: a RESTART checkpoint
   * leaves the file as large as it was.
   */
  async #maybeCheckpoint(st: TenantRep, quiet: boolean): Promise<void> {
    const shipper = st.shipper;
    if (!shipper || st.stopped) return;
    const bytes = st.walBytes;
    // Also a small log, when the pass found nothing new and the file may be larger than the log (`inPlace`).
    if (bytes < this.#o.checkpointBytes && !(st.inPlace && quiet)) return;
    const pool = this.#o.pool;
    // Past the force size too (the log grew faster than the last interval said) this is the unheld attempt:
    // a tenant that went quiet is checkpointed at once, a busy one's next pass is held (`#forceDue`).
    // The mark is where the pass stopped reading; a commit after it skips the job (wal-mark.ts in @domicile/shard).
    const mark = await shipper.checkpointMark();
    if (mark === null) {
      this.#o.onCheckpoint?.(st.ref, 'skipped', 0);
      return;
    }
    // Not held: the job runs after the tenant's queued writes, and a commit among them skips it (the
    // log moved past the mark). A quiet tenant's checkpoint runs at once; a busy one's waits for its held
    // pass (`#forceDue`), so its writes pause once per `checkpointForceBytes`, not per `checkpointBytes`.
    // TRUNCATE: a quiet tenant may stay quiet, and its `-wal` should not keep its size on disk meanwhile;
    // this is also how a file left large by a RESTART (`inPlace`) shrinks, at the tenant's first pause.
    // Skipped: the write that came in has already asked for the next pass, which tries again; a move's hold
    // (moves/checkpoint-holds.ts) or a busy reader waits for the tenant's next write rather than a spin.
    const res = await pool.maintenance(st.ref, { op: 'checkpoint', mode: 'TRUNCATE', expectWal: mark });
    if (res.skipped) {
      this.#o.onCheckpoint?.(st.ref, 'skipped', 0);
      return;
    }
    shipper.noteCheckpoint(res);
    st.walBytes = 0;
    st.inPlace = res.busy !== 0; // busy: folded as far as a reader allowed, not truncated; the next write may restart the log in place
    this.#o.onCheckpoint?.(st.ref, 'quiet', 0);
  }

  /**
   * Whether the log, past `checkpointBytes` already (the unheld attempts come first), will reach
   * `checkpointForceBytes` before the next pass at the pace of the last interval.
   */
  #forceDue(st: TenantRep): boolean {
    return this.#o.pool.heldMaintenance !== undefined && st.walBytes >= this.#o.checkpointBytes
      && st.walBytes + st.walGrowth >= this.#o.checkpointForceBytes;
  }

  /**
   * The tenant is held (nothing commits): ship everything, then checkpoint exactly what was shipped.
   * RESTART, not TRUNCATE: a tenant this busy writes again at once, and appending to a truncated file
   * costs each of its commits more than overwriting the old log in place (RESULTS.md). This is pass
   * `seq` (its sync waiters are answered once shipped). True when the checkpoint ran; false when
   * the hold ended early (a stopped shipper, a WAL that needs a new generation, a skipped job): the
   * caller's normal pass then deals with it.
   */
  async #heldCheckpoint(st: TenantRep, seq: number): Promise<boolean> {
    const shipper = st.shipper;
    if (!shipper || !this.#o.pool.heldMaintenance) return false;
    // The log's bulk reaches the disk before the hold (`before`): a checkpoint first fsyncs the whole -wal
    // (synchronous = NORMAL writes it without fsync), which was most of a held checkpoint's time (RESULTS.md).
    // What the writes add meanwhile is all the checkpoint has left to flush.
    const flush = () => this.#o.syncLog(`${st.ref.path}-wal`, 'hold');
    let heldAt = 0;
    const res = await this.#o.pool.heldMaintenance(st.ref, async () => {
      heldAt = performance.now();
      for (;;) {
        if (st.stopped || st.shipper !== shipper) return null;
        const r = await shipper.pass(st.store);
        this.#uploaded(st, r);
        if (r.kind === 'none') break;
        if (r.kind === 'restart') return null; // the next pass begins a new generation (its snapshot job would wait behind this hold)
      }
      this.#passDone(st, seq);
      const mark = await shipper.checkpointMark();
      return mark === null ? null : { op: 'checkpoint', mode: 'RESTART', expectWal: mark };
    }, flush);
    if (res === null || res.skipped) return false;
    shipper.noteCheckpoint(res);
    st.walBytes = 0;
    st.walGrowth = 0;
    st.inPlace = true;
    this.#o.onCheckpoint?.(st.ref, 'held', (performance.now() - heldAt) / 1000);
    return true;
  }

  /**
   * A shipping slot for `st`. Tenants whose sync writers wait go ahead of the
   * others: with many busy async tenants a round of the queue takes seconds
   * (docs/replication.md, "Lag and cost under load"), which a sync write
   * must not wait for.
   */
  async #acquire(st: TenantRep): Promise<void> {
    if (this.#active < this.#o.concurrency) {
      this.#active++;
      return;
    }
    await new Promise<void>((r) => {
      const go = () => {
        st.queued = undefined;
        r();
      };
      st.queued = go;
      (st.durable.length > 0 ? this.#urgent : this.#slots).push(go);
    });
  }

  /** A sync writer now waits on `st`: if it is queued for a slot, it moves ahead. */
  #promote(st: TenantRep): void {
    const at = st.queued ? this.#slots.indexOf(st.queued) : -1;
    if (at < 0) return;
    this.#slots.splice(at, 1);
    this.#urgent.push(st.queued!);
  }

  #release(): void {
    const next = this.#urgent.shift() ?? this.#slots.shift();
    if (next) next();
    else this.#active--;
    if (this.#admissions.length > 0 && this.backlog < this.#o.maxBacklog) for (const admit of this.#admissions.splice(0)) admit();
  }

  /** Tenants waiting for a shipping slot (generation starts and segments). */
  get backlog(): number {
    return this.#slots.length + this.#urgent.length;
  }

  /**
   * Creation backpressure (docs/replication-format.md, "Creation storms"):
   * resolves true at once while fewer than `maxBacklog` tenants wait for a
   * shipping slot, else once the backlog has shrunk below it, or false after
   * `timeoutMs` (the caller answers 503 OVERLOADED).
   */
  async admitCreation(timeoutMs: number): Promise<boolean> {
    if (this.#slots.length < this.#o.maxBacklog || this.#closed) return true;
    return new Promise<boolean>((resolve) => {
      const admit = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const i = this.#admissions.indexOf(admit);
        if (i >= 0) this.#admissions.splice(i, 1);
        resolve(false);
      }, timeoutMs);
      this.#admissions.push(admit);
    });
  }
}

/** A sync write committed on the node but not (yet) in the bucket (DESIGN §8). */
function notShipped(): DomicileError {
  return new DomicileError('REPLICATION_UNAVAILABLE', 'the write committed on the node but could not be stored in the region\'s bucket yet; it will be shipped when the bucket returns (retry with the same Idempotency-Key)', {
    committedLocally: true,
  });
}
