/**
 * The shard pool (main thread): worker threads that run SQLite, and the
 * scheduler that decides which tenant runs where (DESIGN §7).
 *
 * Scheduling, in order of precedence:
 * 1. A tenant has at most one message in flight, so its requests run in
 *    arrival order and one writer at a time (no locks). When it runs, its
 *    queued `query`/`batch` requests (up to `maxGroup`) go together as one
 *    group commit (group-commit.ts): one transaction, a savepoint each.
 * 2. Dispatch happens at the end of an event-loop turn (setImmediate), so the
 *    requests that arrived in one turn are assigned together, and the ones a
 *    worker got in that pass travel as one `multi` message (at most
 *    `maxPartsPerMessage`). A worker has up to `messagesPerWorker` messages
 *    (default 2) in flight, so it never idles waiting for the main thread and
 *    requests that arrive meanwhile wait for the next message: the busier
 *    the node, the more each message carries (a message costs both threads
 *    as much as a small write). Idle workers are preferred, and a worker that
 *    has not answered for STUCK_MS (a long statement) gets nothing more.
 * 2b. Parts a stuck worker has not started are taken back: each is posted
 *    with a claim in shared memory that the worker takes (compare-and-swap)
 *    right before running it; the main thread takes the unclaimed ones back
 *    the same way and schedules them again. So a long statement holds only
 *    itself up, however many requests its message carried.
 * 3. Tenants with waiting work queue up in arrival order (round robin: a
 *    tenant with more work goes to the back after each request). The head
 *    tenant runs on its home worker (where its handle is open) when that one
 *    is idle; otherwise on any idle worker, which becomes its new home. So a
 *    worker stuck in one tenant's long statement holds no one else hostage.
 *    The handle left on the old worker stays cached (two connections on one
 *    WAL file are fine while only one writes) until the LRU evicts it.
 */
import { readdir, rm, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { DomicileError, deserializeError } from '@domicile/errors';
import type { GroupReplyItem, MaintenanceOp, MaintenanceResult, RequestReply, SessionStepValue, WorkerCounters, WorkerInit, WorkerReply, WorkerRequest } from './protocol.ts';
import type { GroupMember } from './group-commit.ts';
import { SHARD_FILE_SUFFIXES, assertTenantId } from './shard-path.ts';
import { spawnShardWorker } from './spawn-worker.ts';
import { LiveFileDescriptors } from './live-file.ts';
import type { ExecOptions, ExecOutcome, ShardPoolStats, ShardRef, Statement, StatementResult } from './types.ts';
import { DEFAULT_IDEMPOTENCY_TTL_MS, assertIdempotencyKey } from './idempotency-key.ts';
import type { MigrateResult, ShardMigration } from './migrate.ts';
import type { DescribeValue } from './describe.ts';
import { DEFAULT_SESSION_IDLE_TIMEOUT_MS, SessionManager, type SessionInfo } from './session-manager.ts';

/** The smallest logger shape the pool needs (pino fits). */
export interface ShardPoolLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Options of a ShardPool; validated by the constructor. */
export interface ShardPoolOptions {
  /** Worker threads (DOMICILE_WORKERS). */
  workers: number;
  /** Open handles for the whole process, split evenly across workers (DOMICILE_MAX_OPEN_SHARDS). */
  maxOpenShards: number;
  /** Runaway-statement limit (DOMICILE_STATEMENT_TIMEOUT_MS). */
  statementTimeoutMs: number;
  /** Response cap; rows stop being read past it (DOMICILE_MAX_RESULT_BYTES). */
  maxResultBytes: number;
  /** Per-tenant size cap via max_page_count (DOMICILE_MAX_DB_BYTES). */
  maxDbBytes: number;
  /** Requests waiting (not running) across all tenants before OVERLOADED; default 10000. */
  maxQueue?: number;
  /**
   * Messages posted to one worker and not fully answered; default
   * {@link DEFAULT_MESSAGES_PER_WORKER}. 2 keeps a worker busy while the main
   * thread turns the previous message around; idle workers are always
   * preferred. 1 = only idle workers get work.
   */
  messagesPerWorker?: number;
  /** Requests (or groups) in one message; default {@link DEFAULT_MAX_PARTS_PER_MESSAGE}. */
  maxPartsPerMessage?: number;
  /**
   * Most `query`/`batch` requests of one tenant committed as one transaction
   * (group commit, group-commit.ts); default {@link DEFAULT_MAX_GROUP}. 1 turns
   * grouping off.
   */
  maxGroup?: number;
  /** Idle time after which an interactive session is rolled back and its tenant released; default 10 s (session-manager.ts). */
  sessionIdleTimeoutMs?: number;
  /** How long a write recorded under an Idempotency-Key answers retries; default 24 h (DESIGN §5). Tests shorten it. */
  idempotencyTtlMs?: number;
  logger?: ShardPoolLogger;
  /**
   * Replication on (DESIGN §8): handles never auto-checkpoint nor checkpoint
   * on close; only `maintenance` jobs do. Default false (today's behaviour).
   */
  replication?: boolean;
  /**
   * Called on the main thread after every successful tenant request (and
   * when an interactive session ends): the tenant's WAL may have gained
   * commits. The replicator captures from it.
   */
  onCommit?: (ref: ShardRef) => void;
  /**
   * @internal Test hook: a worker posts its answer to a part it skipped (one
   * the main thread took back) this much later, so tests can make that
   * answer arrive after everything else.
   */
  testSkipDelayMs?: number;
}

/**
 * A worker with work in flight that has not answered for this long is treated
 * as stuck (a long statement): it gets no further requests until it answers,
 * and the parts of its messages it has not started are taken back.
 */
const STUCK_MS = 10;

/** Default messages in flight per worker (docs/shards.md, "Scheduling"). */
export const DEFAULT_MESSAGES_PER_WORKER = 2;
/** Default requests per message (docs/shards.md, "Scheduling"). */
export const DEFAULT_MAX_PARTS_PER_MESSAGE = 32;
/** Claim slots per worker: more than the parts it can have posted and not yet passed (messagesPerWorker × maxPartsPerMessage). */
const CLAIM_SLOTS = 4096;
/** A claim the main thread took back (protocol.ts `claim`). */
const CLAIM_STOLEN = -1;
/** What a taken-back call resolves to: its jobs go back to their tenant's queue. */
const STOLEN: unique symbol = Symbol('stolen');

/** Default bound on waiting requests. */
export const DEFAULT_MAX_QUEUE = 10_000;

/** Default cap on the requests of one group commit (docs/shards.md, "Group commit"). */
export const DEFAULT_MAX_GROUP = 64;

type JobValue = typeof STOLEN | StatementResult | StatementResult[] | ExecOutcome<StatementResult | StatementResult[]> | MigrateResult | SessionStepValue | MaintenanceResult | DescribeValue | GroupReplyItem[] | number | null;

interface Job {
  build(id: number): WorkerRequest;
  resolve(value: JobValue): void;
  reject(err: unknown): void;
  /** Set by session opens: called when the request starts on a worker; the tenant stays held from then on. */
  hold?(slot: number): void;
  /** The request may have committed: report it through `onCommit` when it succeeds. */
  notify: boolean;
  ref: ShardRef;
  /** A `query`/`batch` request that may share a group commit with its tenant's neighbours. */
  member?: GroupMember;
}

interface TenantState {
  readonly tenant: string;
  readonly queue: Job[];
  running: boolean;
  inReady: boolean;
  /** Worker of the latest request; preferred while idle. */
  home: number | undefined;
  /** Workers that (as far as their replies told) hold an open handle. */
  readonly openOn: Set<number>;
  erasing: Promise<{ files: number }> | undefined;
  readonly idleWaiters: (() => void)[];
  /** An interactive session owns the tenant: its queue waits (session-manager.ts). */
  held: boolean;
  /** Ref of the latest request, for `onCommit` when a session ends. */
  lastRef: ShardRef | undefined;
}

/** One worker thread and its pending calls. */
class WorkerSlot {
  readonly index: number;
  readonly worker: Worker;
  readonly pending = new Map<number, { resolve(v: JobValue): void; reject(e: unknown): void }>();
  /** Tenant requests in flight (control messages do not count). */
  inFlight = 0;
  /** The worker's OS thread id, once it is ready (Linux; thread-cpu.ts). */
  tid: number | undefined;
  /** Ids of the requests of each posted message not answered yet, oldest first (the limit `messagesPerWorker`). */
  readonly messages: Set<number>[] = [];
  /** Shared with the worker: claim slot → id of the part posted there; 0 once the worker took it, CLAIM_STOLEN once taken back. */
  readonly claims: Int32Array;
  /** Claim slot of each part that can still be taken back. */
  readonly claimOf = new Map<number, number>();
  #nextClaim = 0;
  /** When this worker last answered, or was handed work while idle (performance.now()). */
  lastProgress = 0;
  ready = false;
  stopping = false;
  /** Exited and not replaced. */
  dead = false;
  counters: WorkerCounters = { open: 0, opens: 0, evictions: 0, interrupts: 0, groups: 0, replayed: 0, closed: [] };
  lastError: unknown;

  constructor(index: number, worker: Worker, claims: SharedArrayBuffer) {
    this.index = index;
    this.worker = worker;
    this.claims = new Int32Array(claims);
  }

  /** A claim slot for part `id`, set before it is posted. */
  claim(id: number): number {
    const c = this.#nextClaim;
    this.#nextClaim = (c + 1) % CLAIM_SLOTS;
    Atomics.store(this.claims, c, id);
    this.claimOf.set(id, c);
    return c;
  }

  /** The worker answered `id` (or skipped it): it no longer counts against its message. */
  answered(id: number): void {
    this.claimOf.delete(id);
    const i = this.messages.findIndex((m) => m.has(id));
    if (i < 0) return;
    const m = this.messages[i]!;
    m.delete(id);
    if (m.size === 0) this.messages.splice(i, 1);
  }
}

const noopLogger: ShardPoolLogger = { info() {}, warn() {}, error() {} };

/** Runs tenant SQL on a pool of worker threads; see the file comment for the scheduling rules. */
export class ShardPool {
  readonly #opts: Readonly<Required<Omit<ShardPoolOptions, 'logger' | 'onCommit' | 'testSkipDelayMs'>>>;
  readonly #testSkipDelayMs: number;
  readonly #onCommit: ((ref: ShardRef) => void) | undefined;
  readonly #log: ShardPoolLogger;
  readonly #slots: WorkerSlot[] = [];
  readonly #tenants = new Map<string, TenantState>();
  readonly #ready: TenantState[] = [];
  #nextId = 1;
  #queued = 0;
  #running = 0;
  #rr = 0;
  #pumpScheduled = false;
  #stuckTimer: NodeJS.Timeout | undefined;
  /** Requests assigned by the running #pump, posted together at its end. */
  readonly #outbox = new Map<WorkerSlot, WorkerRequest[]>();
  #started = false;
  #closing: Promise<void> | undefined;
  /** The pool's descriptors of live database files (live-file.ts); one may close when its tenant has no state here. */
  readonly #liveFiles = new LiveFileDescriptors((tenant) => this.#tenants.has(tenant));
  readonly #drainWaiters: (() => void)[] = [];
  /** Counters of replaced workers, so stats never go backwards. */
  readonly #retired = { opens: 0, evictions: 0, interrupts: 0, groups: 0, replayed: 0 };
  readonly #sessions: SessionManager;

  constructor(opts: ShardPoolOptions) {
    const positiveInt = (key: keyof ShardPoolOptions, v: unknown): number => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
        throw new DomicileError('INTERNAL', `ShardPool option ${key} must be a positive integer, got ${String(v)}`);
      }
      return v;
    };
    this.#opts = Object.freeze({
      workers: positiveInt('workers', opts.workers),
      maxOpenShards: positiveInt('maxOpenShards', opts.maxOpenShards),
      statementTimeoutMs: positiveInt('statementTimeoutMs', opts.statementTimeoutMs),
      maxResultBytes: positiveInt('maxResultBytes', opts.maxResultBytes),
      maxDbBytes: positiveInt('maxDbBytes', opts.maxDbBytes),
      maxQueue: positiveInt('maxQueue', opts.maxQueue ?? DEFAULT_MAX_QUEUE),
      messagesPerWorker: positiveInt('messagesPerWorker', opts.messagesPerWorker ?? DEFAULT_MESSAGES_PER_WORKER),
      maxPartsPerMessage: positiveInt('maxPartsPerMessage', opts.maxPartsPerMessage ?? DEFAULT_MAX_PARTS_PER_MESSAGE),
      maxGroup: positiveInt('maxGroup', opts.maxGroup ?? DEFAULT_MAX_GROUP),
      sessionIdleTimeoutMs: positiveInt('sessionIdleTimeoutMs', opts.sessionIdleTimeoutMs ?? DEFAULT_SESSION_IDLE_TIMEOUT_MS),
      idempotencyTtlMs: positiveInt('idempotencyTtlMs', opts.idempotencyTtlMs ?? DEFAULT_IDEMPOTENCY_TTL_MS),
      replication: opts.replication === true,
    });
    this.#onCommit = opts.onCommit;
    this.#testSkipDelayMs = opts.testSkipDelayMs ?? 0;
    this.#log = opts.logger ?? noopLogger;
    this.#sessions = new SessionManager({
      enqueueHolding: (ref, build, hold) => this.#enqueue(ref, build, hold),
      call: (slot, build) => this.#callSession(slot, build),
      release: (tenant) => this.#release(tenant),
      log: (level, obj, msg) => this.#log[level](obj, msg),
    }, this.#opts.sessionIdleTimeoutMs);
  }

  /** Start the workers; resolves when every one has loaded. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const readies: Promise<void>[] = [];
    for (let i = 0; i < this.#opts.workers; i++) readies.push(this.#spawn(i));
    await Promise.all(readies);
  }

  /** Create the tenant's shard file with its `_domicile_meta` row; INTERNAL "stale shard file" if any file is there. */
  async create(ref: ShardRef): Promise<void> {
    assertTenantId(ref.tenant);
    const erasing = this.#tenants.get(ref.tenant)?.erasing;
    if (erasing) await erasing.catch(() => undefined);
    await this.#enqueue(ref, (id) => ({ id, type: 'create', ref }));
  }

  /** Run one statement as its own transaction; with `opts.idempotencyKey`, at most once (idempotency.ts). */
  async query(ref: ShardRef, stmt: Statement, opts: ExecOptions = {}): Promise<StatementResult> {
    return (await this.queryOutcome(ref, stmt, opts)).result;
  }

  /** `query`, telling also whether the answer was replayed from the record of an earlier request with the same key. */
  async queryOutcome(ref: ShardRef, stmt: Statement, opts: ExecOptions = {}): Promise<ExecOutcome<StatementResult>> {
    assertTenantId(ref.tenant);
    if (!stmt || typeof stmt !== 'object') throw new DomicileError('BAD_REQUEST', 'statement must be an object');
    const statement: Statement = stmt.params === undefined ? { sql: stmt.sql } : { sql: stmt.sql, params: stmt.params };
    const o = execOptions(opts);
    const value = await this.#enqueue(ref, (id) => ({ id, type: 'query', ref, statement, opts: o }), undefined, true, { kind: 'query', statement, opts: o });
    return o.idempotencyKey === undefined ? { result: value as StatementResult, replayed: false } : (value as ExecOutcome<StatementResult>);
  }

  /**
   * Apply, in order, each migration the shard has not recorded in
   * `_domicile_migrations`, each in its own transaction (migrate.ts). Stops at
   * the first failure, which the result carries (it does not reject for it).
   */
  async migrate(ref: ShardRef, migrations: readonly ShardMigration[]): Promise<MigrateResult> {
    assertTenantId(ref.tenant);
    if (!Array.isArray(migrations)) throw new DomicileError('BAD_REQUEST', 'migrations must be an array');
    const list = migrations.map((m) => ({ name: m.name, sql: m.sql, checksum: m.checksum }));
    return (await this.#enqueue(ref, (id) => ({ id, type: 'migrate', ref, migrations: list }))) as MigrateResult;
  }

  /**
   * Run statements in one transaction, all or nothing; a failure carries
   * `details.statementIndex`. With `opts.idempotencyKey`, at most once (idempotency.ts).
   */
  async batch(ref: ShardRef, stmts: Statement[], opts: ExecOptions = {}): Promise<StatementResult[]> {
    return (await this.batchOutcome(ref, stmts, opts)).result;
  }

  /** `batch`, telling also whether the answer was replayed from the record of an earlier request with the same key. */
  async batchOutcome(ref: ShardRef, stmts: Statement[], opts: ExecOptions = {}): Promise<ExecOutcome<StatementResult[]>> {
    assertTenantId(ref.tenant);
    if (!Array.isArray(stmts)) throw new DomicileError('BAD_REQUEST', 'statements must be an array');
    const statements = stmts.map((s) => (s.params === undefined ? { sql: s.sql } : { sql: s.sql, params: s.params }));
    const o = execOptions(opts);
    const value = await this.#enqueue(ref, (id) => ({ id, type: 'batch', ref, statements, opts: o }), undefined, true, { kind: 'batch', statements, opts: o });
    return o.idempotencyKey === undefined ? { result: value as StatementResult[], replayed: false } : (value as ExecOutcome<StatementResult[]>);
  }

  /**
   * Erase a tenant's shard: let its in-flight request finish, fail its queued
   * ones with TENANT_NOT_FOUND, close its handles on every worker, then delete
   * the .db, -wal, -shm and -journal files. Returns how many existed.
   */
  erase(ref: ShardRef): Promise<{ files: number }> {
    assertTenantId(ref.tenant);
    if (this.#closing) return Promise.reject(unavailable());
    const state = this.#state(ref.tenant);
    if (state.erasing) return state.erasing;
    const promise = this.#erase(state, ref);
    state.erasing = promise;
    return promise;
  }

  /**
   * Shut down gracefully: refuse new work with NODE_UNAVAILABLE, finish what is
   * queued and in flight, checkpoint (TRUNCATE) and close every handle worker by
   * worker (so the last connection of each file closes alone and removes its
   * -wal), then stop the workers. With replication on nothing is checkpointed:
   * the -wal stays for the replicator (which flushes before and after this).
   */
  close(): Promise<void> {
    // Open sessions hold their tenants' queues: roll them back first, then drain.
    this.#closing ??= this.#sessions.closeAll('shutdown').then(() => this.#close());
    return this.#closing;
  }

  /**
   * Run a replication job (protocol.ts `MaintenanceOp`) in the tenant's queue:
   * after its earlier requests and before its later ones, on whichever worker
   * the scheduler picks, so it never races with the tenant's writes.
   */
  async maintenance(ref: ShardRef, job: MaintenanceOp): Promise<MaintenanceResult> {
    assertTenantId(ref.tenant);
    // A snapshot copy reads the live file through the pool's descriptor (live-file.ts), lent for the job.
    const fd = job.op === 'snapshot-copy' ? this.#liveFiles.borrow(ref) : undefined;
    try {
      const j = plainJob(job.op === 'snapshot-copy' ? { op: 'snapshot-copy', dest: job.dest, fd } : job);
      return (await this.#enqueue(ref, (id) => ({ id, type: 'maintenance', ref, job: j }), undefined, false)) as MaintenanceResult;
    } finally {
      if (fd !== undefined) this.#liveFiles.giveBack(fd);
    }
  }

  /**
   * Lend an open descriptor of the tenant's live database file, for reads at
   * explicit positions only (never close it: {@link returnLiveFile}). Every
   * reader of the live file outside SQLite (the replication shippers, a
   * move's follower) goes through here, because closing any descriptor of the
   * file drops the SQLite locks this process holds on it (live-file.ts): the
   * pool keeps one per file and closes it only once it is given back and no
   * worker has the tenant open. Throws as `openSync` does (ENOENT: no file).
   */
  borrowLiveFile(ref: { tenant: string; path: string }): number {
    return this.#liveFiles.borrow(ref);
  }

  /** Give back a descriptor from {@link borrowLiveFile}; do not use it afterwards. */
  returnLiveFile(fd: number): void {
    this.#liveFiles.giveBack(fd);
  }

  /**
   * A checkpoint that steady writes cannot starve (the replicator's, DESIGN §8):
   * ahead of the tenant's queued requests (after its in-flight ones), the
   * tenant is held on one worker with its handle open; `prepare` runs on the
   * main thread while nothing commits (it ships what is left of the WAL) and
   * returns the job to run there — or null to run none. The tenant's requests
   * wait meanwhile (a short pause). `before` runs first, while the tenant
   * still writes (the replicator flushes the -wal there, so the job has less
   * to do inside the hold). Returns the job's result, or null.
   */
  async heldMaintenance(ref: ShardRef, prepare: () => Promise<MaintenanceOp | null>, before?: () => Promise<void>): Promise<MaintenanceResult | null> {
    assertTenantId(ref.tenant);
    await before?.();
    let slot = -1;
    let held!: () => void;
    const acquired = new Promise<void>((r) => { held = r; });
    // A no-op job opens the handle and holds the tenant from then on.
    await this.#enqueue(ref, (id) => ({ id, type: 'maintenance', ref, job: { op: 'hold' } }), (i) => { slot = i; held(); }, false, undefined, true);
    await acquired;
    try {
      const job = await prepare();
      if (!job) return null;
      const j = plainJob(job);
      return (await this.#callSession(slot, (id) => ({ id, type: 'maintenance', ref, job: j }))) as MaintenanceResult;
    } finally {
      this.#release(ref.tenant);
    }
  }

  /**
   * Run `fn` on the main thread with the tenant to itself: after its earlier
   * requests (an open interactive session finishes or times out first), with
   * its handle closed on every worker, and before its later requests, which
   * wait (they then reopen the files `fn` left). Used to swap a shard's files
   * (restore in place). `onCommit` is reported afterwards. Closing the handles
   * never checkpoints when replication is on (the replicator's WAL stays as
   * it was); with replication off it checkpoints like an eviction.
   */
  async exclusive<T>(ref: ShardRef, fn: () => Promise<T>): Promise<T> {
    assertTenantId(ref.tenant);
    let held!: () => void;
    const acquired = new Promise<void>((r) => { held = r; });
    // The job closes the handle on the worker the scheduler picked and holds the tenant from then on.
    const job = this.#enqueue(ref, (id) => ({ id, type: 'close-tenant', tenant: ref.tenant, reason: 'replace' }), () => held(), false);
    await job;
    await acquired;
    try {
      for (const slot of this.#slots) {
        await this.#call(slot, (id) => ({ id, type: 'close-tenant', tenant: ref.tenant, reason: 'replace' }));
      }
      const state = this.#tenants.get(ref.tenant);
      state?.openOn.clear();
      return await fn();
    } finally {
      this.#release(ref.tenant);
    }
  }

  /** The running workers' OS thread ids (for per-thread CPU in /metrics), named `shard-<index>`. */
  threads(): Array<{ thread: string; tid: number }> {
    const out: Array<{ thread: string; tid: number }> = [];
    for (const s of this.#slots) if (s && !s.dead && s.tid !== undefined) out.push({ thread: `shard-${s.index}`, tid: s.tid });
    return out;
  }

  /** Counters for /metrics; `openShards` is as of each worker's latest reply. */
  stats(): ShardPoolStats {
    let open = 0;
    let opens = this.#retired.opens;
    let evictions = this.#retired.evictions;
    let interrupts = this.#retired.interrupts;
    for (const s of this.#slots) {
      open += s.counters.open;
      opens += s.counters.opens;
      evictions += s.counters.evictions;
      interrupts += s.counters.interrupts;
    }
    return { openShards: open, evictions, interrupts, opens, queued: this.#queued, workers: this.#slots.length, trackedTenants: this.#tenants.size };
  }

  /** Group commit counters: transactions that committed several requests, and requests replayed alone after a whole-transaction rollback. */
  groupStats(): { groups: number; replayed: number } {
    let groups = this.#retired.groups;
    let replayed = this.#retired.replayed;
    for (const s of this.#slots) {
      groups += s.counters.groups;
      replayed += s.counters.replayed;
    }
    return { groups, replayed };
  }

  /**
   * Open an interactive session (Hrana transactions): it waits behind the
   * tenant's earlier requests, then holds the tenant on one worker and one
   * pinned handle until `closeSession` or the idle timeout. Meanwhile the
   * tenant's other requests wait; other tenants are unaffected.
   */
  async openSession(ref: ShardRef): Promise<string> {
    assertTenantId(ref.tenant);
    return this.#sessions.open({ tenant: ref.tenant, incarnation: ref.incarnation, path: ref.path, epoch: ref.epoch });
  }

  /**
   * Run one statement in a session; BEGIN, COMMIT, ROLLBACK, SAVEPOINT and
   * RELEASE are allowed. A session that ended (closed, expired, erased, worker
   * crash) answers BAD_REQUEST naming why.
   */
  async sessionExecute(sessionId: string, stmt: Statement, opts: ExecOptions = {}): Promise<StatementResult> {
    if (this.#closing) throw unavailable();
    if (!stmt || typeof stmt !== 'object') throw new DomicileError('BAD_REQUEST', 'statement must be an object');
    const statement: Statement = stmt.params === undefined ? { sql: stmt.sql } : { sql: stmt.sql, params: stmt.params };
    return this.#sessions.execute(sessionId, statement, { readOnly: opts.readOnly === true });
  }

  /**
   * Hrana `describe`: prepare one statement (guarded) and report its columns
   * and whether it is read-only; nothing runs. With `sessionId`, on the
   * session's connection (the tenant's queue is held by it).
   */
  async describe(ref: ShardRef, sql: string, sessionId?: string): Promise<DescribeValue> {
    if (this.#closing) throw unavailable();
    if (typeof sql !== 'string') throw new DomicileError('BAD_REQUEST', 'sql must be a string');
    if (sessionId !== undefined) return this.#sessions.describe(sessionId, sql);
    assertTenantId(ref.tenant);
    return (await this.#enqueue(ref, (id) => ({ id, type: 'describe', ref, sql }), undefined, false)) as DescribeValue;
  }

  /** Whether a session is live and in autocommit (no open transaction); undefined once it ended. */
  sessionInfo(sessionId: string): SessionInfo | undefined {
    return this.#sessions.info(sessionId);
  }

  /** End a session, rolling back an open transaction; false when it had already ended. */
  closeSession(sessionId: string): Promise<boolean> {
    return this.#sessions.close(sessionId, 'closed');
  }

  /**
   * @internal Test hook: `throw` makes worker `index` throw an uncaught
   * exception; `terminate` kills it mid-request as a crash would.
   */
  _crashWorker(index: number, how: 'throw' | 'terminate'): void {
    const slot = this.#slots[index];
    if (!slot) return;
    if (how === 'throw') slot.worker.postMessage({ id: 0, type: 'crash' } satisfies WorkerRequest);
    else void slot.worker.terminate();
  }

  // ---- scheduling ----

  /** A session statement goes straight to its worker; it counts as in flight there so the scheduler prefers others. */
  #callSession(index: number, build: (id: number) => WorkerRequest): Promise<JobValue> {
    const slot = this.#slots[index];
    if (!slot || slot.dead || slot.stopping) return Promise.reject(new DomicileError('INTERNAL', 'the shard worker of this session is gone'));
    slot.inFlight++;
    return this.#call(slot, build, false, true).finally(() => {
      slot.inFlight--;
      this.#pump();
    });
  }

  /** A session ended: the tenant's queue may run again. */
  #release(tenant: string): void {
    const state = this.#tenants.get(tenant);
    if (!state) return;
    state.held = false;
    if (state.lastRef && !state.erasing) this.#notify(state.lastRef);
    if (state.queue.length > 0 && !state.erasing) this.#markReady(state);
    else if (!state.running && !state.erasing && state.openOn.size === 0) this.#drop(state);
    this.#pump();
  }

  #notify(ref: ShardRef): void {
    if (!this.#onCommit) return;
    try {
      this.#onCommit(ref);
    } catch (err) {
      this.#log.error({ tenant: ref.tenant, err }, 'onCommit failed');
    }
  }

  #enqueue(ref: ShardRef, build: (id: number) => WorkerRequest, hold?: (slot: number) => void, notify = true, member?: GroupMember, front = false): Promise<JobValue> {
    if (this.#closing) return Promise.reject(unavailable());
    if (!this.#started) return Promise.reject(new DomicileError('INTERNAL', 'ShardPool.start() was not called'));
    if (this.#queued >= this.#opts.maxQueue) {
      return Promise.reject(new DomicileError('OVERLOADED', 'too many requests are waiting for a shard worker', { queued: this.#queued }));
    }
    const state = this.#state(ref.tenant);
    if (state.erasing) return Promise.reject(new DomicileError('TENANT_NOT_FOUND', 'the tenant is being erased'));
    state.lastRef = ref;
    return new Promise<JobValue>((resolve, reject) => {
      const job: Job = { build, resolve, reject, notify, ref, ...(hold ? { hold } : {}), ...(member ? { member } : {}) };
      if (front) state.queue.unshift(job);
      else state.queue.push(job);
      this.#queued++;
      this.#markReady(state);
      this.#schedulePump();
    });
  }

  #state(tenant: string): TenantState {
    let s = this.#tenants.get(tenant);
    if (!s) {
      s = { tenant, queue: [], running: false, inReady: false, home: undefined, openOn: new Set(), erasing: undefined, idleWaiters: [], held: false, lastRef: undefined };
      this.#tenants.set(tenant, s);
    }
    return s;
  }

  #markReady(state: TenantState): void {
    if (state.running || state.inReady || state.queue.length === 0 || state.held) return;
    state.inReady = true;
    this.#ready.push(state);
  }

  /**
   * Pump once the current event-loop turn is over, so that the requests that
   * arrived in it (and the answers that freed workers) are dispatched together:
   * a tenant's requests form one group, several tenants' requests for one
   * worker travel as one message.
   */
  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#ready.length > 0) {
      const state = this.#ready[0]!;
      const slot = this.#pick(state);
      if (!slot) break;
      this.#ready.shift();
      state.inReady = false;
      this.#run(state, slot);
    }
    this.#flush();
  }

  /** Post what #pump assigned: one message per worker (`multi` when it got several requests). */
  #flush(): void {
    for (const [slot, parts] of this.#outbox) {
      if (slot.dead) continue; // its pending calls were failed by #onCrash
      slot.messages.push(new Set(parts.map((p) => p.id)));
      slot.worker.postMessage(parts.length === 1 ? parts[0]! : ({ id: 0, type: 'multi', parts } satisfies WorkerRequest));
    }
    this.#outbox.clear();
    // Watch for stuck workers only while some part can be taken back: an idle node does not wake every STUCK_MS.
    if (!this.#stuckTimer && this.#slots.some((sl) => sl.claimOf.size > 0)) {
      this.#stuckTimer = setInterval(() => this.#takeBackFromStuck(), STUCK_MS);
      this.#stuckTimer.unref();
    }
  }

  /**
   * Home if idle, else an idle worker that still has the handle, else any idle
   * worker (round robin); only when none is idle, the same order among workers
   * with fewer than `messagesPerWorker` messages in flight. A worker already
   * given parts in this pass takes more until its message is full.
   */
  #pick(state: TenantState): WorkerSlot | undefined {
    const stuckBefore = performance.now() - STUCK_MS;
    const maxParts = this.#opts.maxPartsPerMessage;
    for (let limit = 1; limit <= this.#opts.messagesPerWorker; limit++) {
      // A busy worker gets more only while it keeps answering: never queue behind a statement that has run for STUCK_MS.
      const usable = (s: WorkerSlot | undefined): s is WorkerSlot => {
        if (s === undefined || s.stopping || (s.inFlight > 0 && s.lastProgress <= stuckBefore)) return false;
        const parts = this.#outbox.get(s)?.length ?? 0;
        return parts > 0 ? parts < maxParts : s.messages.length < limit;
      };
      if (state.home !== undefined) {
        const home = this.#slots[state.home];
        if (usable(home)) return home;
      }
      for (const i of state.openOn) {
        const s = this.#slots[i];
        if (usable(s)) return s;
      }
      const n = this.#slots.length;
      for (let k = 0; k < n; k++) {
        const s = this.#slots[(this.#rr + k) % n];
        if (usable(s)) {
          this.#rr = (s.index + 1) % n;
          return s;
        }
      }
    }
    return undefined;
  }

  #run(state: TenantState, slot: WorkerSlot): void {
    const job = state.queue.shift()!;
    if (job.member && this.#opts.maxGroup > 1 && state.queue.length > 0 && sameGroup(job, state.queue[0]!)) {
      const group = [job];
      while (group.length < this.#opts.maxGroup && state.queue.length > 0 && sameGroup(job, state.queue[0]!)) group.push(state.queue.shift()!);
      this.#runGroup(state, slot, group);
      return;
    }
    if (job.hold) {
      state.held = true;
      job.hold(slot.index);
    }
    this.#queued--;
    this.#running++;
    state.running = true;
    state.home = slot.index;
    slot.inFlight++;
    this.#call(slot, job.build, true, false, !job.hold).then(
      (value) => {
        if (value === STOLEN) return this.#requeue(state, slot, [job]);
        state.openOn.add(slot.index);
        this.#finish(state, slot);
        if (job.notify && !job.hold) this.#notify(job.ref);
        job.resolve(value);
      },
      (err) => {
        this.#finish(state, slot);
        job.reject(err);
      },
    );
  }

  /**
   * Several queued requests of one tenant as one `group` message (group
   * commit): one answer per member, all after the group's COMMIT; `onCommit`
   * once, before any member's promise settles.
   */
  #runGroup(state: TenantState, slot: WorkerSlot, group: Job[]): void {
    const ref = group[0]!.ref;
    const members = group.map((j) => j.member!);
    this.#queued -= group.length;
    this.#running++;
    state.running = true;
    state.home = slot.index;
    slot.inFlight++;
    this.#call(slot, (id) => ({ id, type: 'group', ref, members }), true, false, true).then(
      (value) => {
        if (value === STOLEN) return this.#requeue(state, slot, group);
        state.openOn.add(slot.index);
        this.#finish(state, slot);
        const items = value as GroupReplyItem[];
        if (items.some((r) => r.ok)) this.#notify(ref);
        group.forEach((job, i) => {
          const r = items[i];
          if (r?.ok) job.resolve(r.value);
          else job.reject(r ? deserializeError(r.error) : new DomicileError('INTERNAL', 'the shard worker did not answer this request'));
        });
      },
      (err) => {
        this.#finish(state, slot);
        for (const job of group) job.reject(err);
      },
    );
  }

  /** Jobs taken back from a stuck worker before it started them: first in their tenant's queue again, in order. */
  #requeue(state: TenantState, slot: WorkerSlot, jobs: Job[]): void {
    if (state.erasing) {
      // Erase already failed the tenant's queue and waits for this request to end: it never runs.
      this.#finish(state, slot);
      for (const job of jobs) job.reject(new DomicileError('TENANT_NOT_FOUND', 'the tenant was erased'));
      return;
    }
    state.queue.unshift(...jobs);
    this.#queued += jobs.length;
    this.#finish(state, slot);
  }

  /**
   * Every STUCK_MS: from each worker that has not answered for STUCK_MS, take
   * back the parts it has not started (rule 2b). Whichever side swaps the
   * claim first has the part: the worker runs it, or skips it and says so.
   */
  #takeBackFromStuck(): void {
    if (!this.#slots.some((sl) => sl?.claimOf.size > 0)) {
      clearInterval(this.#stuckTimer);
      this.#stuckTimer = undefined;
      return;
    }
    const stuckBefore = performance.now() - STUCK_MS;
    for (const slot of this.#slots) {
      // A worker still loading (a replacement) is slow, not stuck: its parts wait for it.
      if (!slot || slot.dead || !slot.ready || slot.inFlight === 0 || slot.lastProgress > stuckBefore || slot.claimOf.size === 0) continue;
      for (const [id, c] of slot.claimOf) {
        if (Atomics.compareExchange(slot.claims, c, id, CLAIM_STOLEN) !== id) continue;
        slot.claimOf.delete(id);
        const p = slot.pending.get(id);
        slot.pending.delete(id);
        p?.resolve(STOLEN);
      }
    }
  }

  /**
   * Drop a tenant's state once nothing refers to it: no work, no session, no
   * open handle on any worker. Called when a request ends and when a worker
   * reports the tenant's handle closed (an LRU eviction long after its last
   * request: without this, every tenant ever served stayed in the map).
   */
  #forgetIfIdle(state: TenantState): void {
    if (state.running || state.inReady || state.erasing || state.held || state.queue.length > 0 || state.openOn.size > 0) return;
    this.#drop(state);
  }

  /** Forget a tenant's state; no worker has its files open, so the pool's descriptors of them may close. */
  #drop(state: TenantState): void {
    if (this.#tenants.get(state.tenant) === state) this.#tenants.delete(state.tenant);
    this.#liveFiles.tenantClosed(state.tenant);
  }

  #finish(state: TenantState, slot: WorkerSlot): void {
    slot.inFlight--;
    state.running = false;
    this.#running--;
    if (state.queue.length > 0 && !state.erasing) this.#markReady(state);
    else {
      for (const w of state.idleWaiters.splice(0)) w();
      this.#forgetIfIdle(state);
    }
    if (this.#queued === 0 && this.#running === 0) for (const w of this.#drainWaiters.splice(0)) w();
    this.#schedulePump();
  }

  async #erase(state: TenantState, ref: ShardRef): Promise<{ files: number }> {
    try {
      for (const job of state.queue.splice(0)) {
        this.#queued--;
        job.reject(new DomicileError('TENANT_NOT_FOUND', 'the tenant was erased'));
      }
      if (state.inReady) {
        const i = this.#ready.indexOf(state);
        if (i >= 0) this.#ready.splice(i, 1);
        state.inReady = false;
      }
      await this.#sessions.closeTenant(ref.tenant, 'erased');
      if (state.running) await new Promise<void>((r) => state.idleWaiters.push(r));
      // One worker at a time: each closes its handle before the files go.
      for (const slot of this.#slots) {
        await this.#call(slot, (id) => ({ id, type: 'close-tenant', tenant: ref.tenant, reason: 'erase' }));
      }
      let files = 0;
      for (const suffix of SHARD_FILE_SUFFIXES) {
        try {
          await unlink(ref.path + suffix);
          files++;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
            throw new DomicileError('INTERNAL', 'cannot delete a shard file', { file: `*.db${suffix}` }, { cause: err });
          }
        }
      }
      // Snapshot copies the replicator left behind (a crash during a generation start).
      try {
        const dir = dirname(ref.path);
        const prefix = `${basename(ref.path)}.snapshot-`;
        for (const name of await readdir(dir)) {
          if (name.startsWith(prefix) && name.endsWith('.tmp')) await rm(join(dir, name), { force: true });
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new DomicileError('INTERNAL', 'cannot delete a snapshot copy', {}, { cause: err });
      }
      return { files };
    } finally {
      this.#drop(state);
      this.#pump();
    }
  }

  async #close(): Promise<void> {
    if (this.#queued > 0 || this.#running > 0) await new Promise<void>((r) => this.#drainWaiters.push(r));
    for (const state of this.#tenants.values()) if (state.erasing) await state.erasing.catch(() => undefined);
    for (const slot of this.#slots) {
      try {
        await this.#call(slot, (id) => ({ id, type: 'close-all' }));
      } catch (err) {
        this.#log.error({ worker: slot.index, err }, 'closing shard handles failed');
      }
    }
    // Every handle is closed: no SQLite lock of this process is left to lose.
    this.#liveFiles.allClosed();
    for (const slot of this.#slots) slot.stopping = true;
    clearInterval(this.#stuckTimer);
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }

  // ---- workers ----

  /** One answer from a worker: settle its call, note the worker's counters and progress. */
  #onReply(slot: WorkerSlot, msg: RequestReply): void {
    slot.answered(msg.id);
    if (msg.kind === 'skipped') {
      // Taken back by #takeBackFromStuck, already settled. Its message may now be fully answered, which frees the
      // worker for a tenant still waiting: pump, or that tenant waits forever when this was the worker's last answer.
      this.#schedulePump();
      return;
    }
    slot.counters = msg.counters;
    slot.lastProgress = performance.now();
    for (const t of msg.counters.closed) {
      const state = this.#tenants.get(t);
      if (!state) continue;
      state.openOn.delete(slot.index);
      this.#forgetIfIdle(state);
    }
    const p = slot.pending.get(msg.id);
    if (!p) return;
    slot.pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.value);
    else p.reject(deserializeError(msg.error));
  }

  /**
   * Send a request to a worker. `batched` (from #pump) leaves it in the outbox
   * for #flush; `counted` makes a direct message count against
   * `messagesPerWorker` (session statements); `stealable` gives it a claim
   * (rule 2b: it may resolve to STOLEN).
   */
  #call(slot: WorkerSlot, build: (id: number) => WorkerRequest, batched = false, counted = false, stealable = false): Promise<JobValue> {
    // A worker that died and was not replaced holds no handles and answers nothing.
    if (slot.dead) return Promise.resolve(0);
    const id = this.#nextId++;
    if (slot.pending.size === 0) slot.lastProgress = performance.now();
    return new Promise<JobValue>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      const built = build(id);
      const msg = stealable ? { ...built, claim: slot.claim(id) } : built;
      if (!batched) {
        if (counted) slot.messages.push(new Set([id]));
        slot.worker.postMessage(msg);
        return;
      }
      const parts = this.#outbox.get(slot);
      if (parts) parts.push(msg);
      else this.#outbox.set(slot, [msg]);
    });
  }

  #spawn(index: number): Promise<void> {
    const init: WorkerInit = {
      index,
      maxOpenShards: Math.max(1, Math.floor(this.#opts.maxOpenShards / this.#opts.workers)),
      statementTimeoutMs: this.#opts.statementTimeoutMs,
      maxResultBytes: this.#opts.maxResultBytes,
      maxDbBytes: this.#opts.maxDbBytes,
      idempotencyTtlMs: this.#opts.idempotencyTtlMs,
      replication: this.#opts.replication,
      testSkipDelayMs: this.#testSkipDelayMs,
      claims: new SharedArrayBuffer(CLAIM_SLOTS * Int32Array.BYTES_PER_ELEMENT),
    };
    const slot = new WorkerSlot(index, spawnShardWorker(init), init.claims);
    this.#slots[index] = slot;
    return new Promise<void>((resolveReady, rejectReady) => {
      slot.worker.on('message', (msg: WorkerReply) => {
        if (msg.kind === 'ready') {
          slot.ready = true;
          slot.tid = msg.tid;
          resolveReady();
          return;
        }
        if (msg.kind === 'log') {
          this.#log[msg.level]({ worker: index, ...msg.fields }, msg.msg);
          return;
        }
        if (msg.kind === 'replies') for (const r of msg.replies) this.#onReply(slot, r);
        else this.#onReply(slot, msg);
      });
      slot.worker.on('error', (err) => {
        slot.lastError = err;
      });
      slot.worker.on('exit', (code) => {
        slot.dead = true;
        if (slot.stopping) return;
        this.#onCrash(slot, code);
        if (!slot.ready) rejectReady(new DomicileError('INTERNAL', 'a shard worker failed to start', {}, { cause: slot.lastError }));
      });
    });
  }

  /** A worker died: fail its requests with INTERNAL, log, and start a replacement in its place. */
  #onCrash(slot: WorkerSlot, code: number): void {
    this.#log.error({ worker: slot.index, code, err: slot.lastError }, 'shard worker crashed; replacing it');
    this.#retired.opens += slot.counters.opens;
    this.#retired.evictions += slot.counters.evictions;
    this.#retired.interrupts += slot.counters.interrupts;
    this.#retired.groups += slot.counters.groups;
    this.#retired.replayed += slot.counters.replayed;
    for (const state of this.#tenants.values()) state.openOn.delete(slot.index);
    this.#sessions.workerCrashed(slot.index);
    const pending = [...slot.pending.values()];
    slot.pending.clear();
    if (this.#closing || !slot.ready) {
      // Not replaced: a pool that is closing, or a worker that never loaded (no restart loop).
      slot.stopping = true;
    } else {
      this.#spawn(slot.index).catch((err) => this.#log.error({ worker: slot.index, err }, 'replacement shard worker failed to start'));
    }
    for (const p of pending) p.reject(new DomicileError('INTERNAL', 'the shard worker crashed while running this request'));
  }
}

/** Whether `next` may join `first`'s group: both plain requests (no session open) for the same shard incarnation and epoch. */
function sameGroup(first: Job, next: Job): boolean {
  if (!next.member || next.hold) return false;
  const a = first.ref;
  const b = next.ref;
  return a.incarnation === b.incarnation && a.path === b.path && a.epoch === b.epoch;
}

/** The options a worker gets: a copy with only known fields, the key checked (BAD_REQUEST naming the header). */
function execOptions(opts: ExecOptions): ExecOptions {
  const o: ExecOptions = { readOnly: opts.readOnly === true };
  if (opts.idempotencyKey !== undefined) o.idempotencyKey = assertIdempotencyKey(opts.idempotencyKey);
  return o;
}

function unavailable(): DomicileError {
  return new DomicileError('NODE_UNAVAILABLE', 'the shard pool is shutting down');
}

/** A maintenance job with only its own fields (it is posted to a worker). */
function plainJob(job: MaintenanceOp): MaintenanceOp {
  switch (job.op) {
    case 'checkpoint': {
      const w = job.expectWal;
      return {
        op: 'checkpoint',
        ...(job.mode === undefined ? {} : { mode: job.mode }),
        ...(w === undefined ? {} : { expectWal: { salt1: w.salt1, salt2: w.salt2, offset: w.offset } }),
      };
    }
    case 'hold': return { op: 'hold' };
    case 'snapshot-copy': return { op: 'snapshot-copy', dest: job.dest, ...(job.fd === undefined ? {} : { fd: job.fd }) };
  }
}
