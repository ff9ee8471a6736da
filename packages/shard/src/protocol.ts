/**
 * Messages between the pool (main thread) and a shard worker. Everything here
 * is structured-clone safe: values are already wire values and errors travel
 * as `SerializedError`.
 */
import type { WalMark } from './wal-mark.ts';
import type { SerializedError } from '@domicile/errors';
import type { CloseReason } from './handle-cache.ts';
import type { ExecOptions, ExecOutcome, ShardRef, Statement, StatementResult } from './types.ts';
import type { MigrateResult, ShardMigration } from './migrate.ts';
import type { GroupMember, MemberValue } from './group-commit.ts';
import type { DescribeValue } from './describe.ts';

/** `workerData` of a shard worker. */
export interface WorkerInit {
  index: number;
  /** This worker's share of the process-wide handle bound. */
  maxOpenShards: number;
  statementTimeoutMs: number;
  maxResultBytes: number;
  maxDbBytes: number;
  /** How long an idempotency record answers retries (idempotency.ts). */
  idempotencyTtlMs: number;
  /** Replication on (DESIGN §8): no auto-checkpoint, no checkpoint on close (open-shard.ts). */
  replication: boolean;
  /** Test hook (ShardPoolOptions.testSkipDelayMs): post the answer to a skipped part this much later. */
  testSkipDelayMs: number;
  /**
   * Claims of the parts the main thread may take back (shard-pool.ts rule 2b):
   * an Int32Array; a request with `claim: c` runs only if the worker swaps
   * slot c from the request's id to 0 first, else it is skipped.
   */
  claims: SharedArrayBuffer;
}

/**
 * A replication job in a tenant's queue (between its writes, on any worker):
 * `checkpoint` = `wal_checkpoint(TRUNCATE)` (or `RESTART` with `mode`: the log
 * restarts in place, its file keeps its size), skipped when `expectWal` is
 * given and the `-wal` holds frames past it (a commit the shipper has not
 * seen; wal-mark.ts); `hold` = nothing (opens the handle: `heldMaintenance`);
 * `snapshot-copy` = checkpoint TRUNCATE, then copy the database file to `dest`
 * (skipped, nothing copied, when the checkpoint was busy).
 */
export type MaintenanceOp =
  | { op: 'checkpoint'; mode?: 'TRUNCATE' | 'RESTART'; expectWal?: WalMark }
  | { op: 'hold' }
  /**
   * `fd`: an open descriptor of the live database file to copy from (the pool lends its own: closing a
   * descriptor of the file would drop this process's SQLite locks on it, live-file.ts). Set by the pool.
   */
  | { op: 'snapshot-copy'; dest: string; fd?: number };

/** Result of a maintenance job: the checkpoint's row, or why it was skipped. */
export interface MaintenanceResult {
  busy: number;
  log: number;
  checkpointed: number;
  /** Set when nothing was done. */
  skipped?: 'wal-changed' | 'busy' | 'hold';
  /** `snapshot-copy`: the copy exists. */
  copied?: boolean;
}

/**
 * Main → worker. `query` and `batch` answer the plain result, or an
 * `ExecOutcome` when `opts.idempotencyKey` is set.
 */
export type WorkerRequest = WorkerRequestBody & { claim?: number };

type WorkerRequestBody =
  | { id: number; type: 'query'; ref: ShardRef; statement: Statement; opts: ExecOptions }
  | { id: number; type: 'batch'; ref: ShardRef; statements: Statement[]; opts: ExecOptions }
  /** Several queued `query`/`batch` requests of one tenant, in arrival order, group-committed (group-commit.ts); answers `GroupReplyItem[]`. */
  | { id: number; type: 'group'; ref: ShardRef; members: GroupMember[] }
  | { id: number; type: 'create'; ref: ShardRef }
  | { id: number; type: 'close-tenant'; tenant: string; reason: CloseReason }
  | { id: number; type: 'close-all' }
  /** Apply the migrations the shard has not recorded yet (migrate.ts). */
  | { id: number; type: 'migrate'; ref: ShardRef; migrations: ShardMigration[] }
  /** Interactive sessions (worker-sessions.ts): pin the handle, run a statement with transaction control, roll back and unpin. */
  | { id: number; type: 'session-open'; sessionId: string; ref: ShardRef }
  | { id: number; type: 'session-exec'; sessionId: string; statement: Statement; opts: ExecOptions }
  | { id: number; type: 'session-close'; sessionId: string }
  /** Hrana `describe` (describe.ts): prepare only, on the tenant's handle or in a session. */
  | { id: number; type: 'describe'; ref: ShardRef; sql: string }
  | { id: number; type: 'session-describe'; sessionId: string; sql: string }
  /** Replication jobs (checkpoint, snapshot copy), run in the tenant's queue. */
  | { id: number; type: 'maintenance'; ref: ShardRef; job: MaintenanceOp }
  /**
   * Several requests (of different tenants) posted together by one scheduler
   * pass; the worker runs them in order and answers each as it finishes.
   */
  | { id: 0; type: 'multi'; parts: WorkerRequest[] }
  /** Test hook: throw an uncaught exception inside the worker. */
  | { id: number; type: 'crash' };

/** Reply value of `session-exec`: the statement's result or error, and whether the connection is in autocommit afterwards. */
export interface SessionStepValue {
  result?: StatementResult;
  error?: SerializedError;
  autocommit: boolean;
}

/** One member's answer in a `group` reply, in the member's position. */
export type GroupReplyItem = { ok: true; value: MemberValue } | { ok: false; error: SerializedError };

/** Counters a worker reports with every reply. */
export interface WorkerCounters {
  open: number;
  opens: number;
  evictions: number;
  interrupts: number;
  /** Transactions committed for more than one request (group commit). */
  groups: number;
  /** Requests replayed alone after their group's transaction was rolled back as a whole. */
  replayed: number;
  /** Tenants whose handle closed on this worker since its previous reply. */
  closed: string[];
}

/** The answer to one request. */
export type RequestReply =
  | { kind: 'reply'; id: number; ok: true; value: StatementResult | StatementResult[] | ExecOutcome<StatementResult | StatementResult[]> | MigrateResult | SessionStepValue | MaintenanceResult | DescribeValue | number | null; counters: WorkerCounters }
  | { kind: 'reply'; id: number; ok: false; error: SerializedError; counters: WorkerCounters }
  | { kind: 'skipped'; id: number };

/** Worker → main. `replies`: answers to parts of one `multi` message, in order (shard-worker.ts). `skipped`: a part taken back before it started. */
export type WorkerReply =
  | RequestReply
  | { kind: 'replies'; replies: RequestReply[] }
  /** `tid`: the worker's OS thread id (thread-cpu.ts), when the platform has one. */
  | { kind: 'ready'; tid?: number }
  | { kind: 'log'; level: 'info' | 'warn' | 'error'; msg: string; fields: Record<string, unknown> };
