/**
 * Interactive sessions on a worker (Hrana transactions, DESIGN §5): a session
 * is one pinned handle on this worker, on which tenant SQL may use BEGIN,
 * COMMIT, ROLLBACK, SAVEPOINT and RELEASE. The pool guarantees that nothing
 * else of the tenant runs while a session exists, so the open transaction is
 * the only writer of the shard.
 *
 * Txid bookkeeping (every committed write transaction bumps
 * `_domicile_meta.txid` once, in the same transaction) without reading SQL
 * text: only a statement that SQLite reports as read-only and not returning
 * rows can end a transaction (COMMIT, END, ROLLBACK, RELEASE; also SAVEPOINT
 * and a few PRAGMAs, which are harmless here). Before such a statement runs in
 * a transaction that wrote, a trusted bump runs inside the transaction unless
 * the txid already differs from its value at BEGIN. So the bump commits with a
 * COMMIT and rolls back with a ROLLBACK (or a ROLLBACK TO that undoes it, in
 * which case the next candidate bumps again). A write in autocommit takes the
 * ordinary `/query` path (its own transaction and bump).
 */
import type { Statement as SqliteStatement } from 'better-sqlite3';
import { DomicileError } from '@domicile/errors';
import { executeOne, prepareTenant, refuseWriteIfReadOnly, run, strip, toDomicile, wrap, type ExecLimits } from './execute.ts';
import type { HandleCache } from './handle-cache.ts';
import { describeStatement, type DescribeValue } from './describe.ts';
import type { ShardHandle } from './open-shard.ts';
import type { SessionStepValue } from './protocol.ts';
import type { ExecOptions, ShardRef, Statement } from './types.ts';
import { toBindParams } from './values.ts';

interface WorkerSession {
  readonly ref: ShardRef;
  /** `_domicile_meta.txid` as read right after the transaction began; undefined in autocommit. */
  txidAtBegin: bigint | undefined;
  /** A statement that may write ran (or started) in the current transaction. */
  wrote: boolean;
}

/**
 * A BEGIN statement (SQLite's grammar: no other statement starts with the
 * keyword). Needed because BEGIN IMMEDIATE and EXCLUSIVE are not "read-only"
 * to SQLite, so the /query path would wrap them in Domicile's own transaction.
 * A miss fails safe ("cannot start a transaction within a transaction"); the
 * guard still decides what is allowed.
 */
const BEGIN = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*begin\b/i;

/** Trusted `SELECT txid`, prepared once per handle. */
const readTxidStatements = new WeakMap<ShardHandle, SqliteStatement>();

function readTxid(h: ShardHandle): bigint {
  let stmt = readTxidStatements.get(h);
  if (!stmt) {
    stmt = h.guard.trusted(() => h.db.prepare('SELECT txid FROM main._domicile_meta WHERE id = 1').pluck().safeIntegers(true));
    readTxidStatements.set(h, stmt);
  }
  const s = stmt;
  return wrap(h, () => h.guard.trusted(() => s.get() as bigint));
}

/** The sessions of one worker, by session id. */
export class WorkerSessions {
  readonly #cache: HandleCache;
  readonly #limits: ExecLimits;
  readonly #sessions = new Map<string, WorkerSession>();

  constructor(cache: HandleCache, limits: ExecLimits) {
    this.#cache = cache;
    this.#limits = limits;
  }

  /** Open (or reuse) the tenant's handle here and pin it until `close`. */
  open(sessionId: string, ref: ShardRef): null {
    this.#cache.use(ref, () => undefined);
    this.#cache.pin(ref.tenant);
    this.#sessions.set(sessionId, { ref, txidAtBegin: undefined, wrote: false });
    return null;
  }

  /**
   * Run one statement with transaction control allowed. Never throws for the
   * statement's own failure: the error travels in the value together with
   * whether the connection is back in autocommit (SQLite rolls back by itself
   * on some errors).
   */
  execute(sessionId: string, stmt: Statement, opts: ExecOptions): SessionStepValue {
    const s = this.#sessions.get(sessionId);
    if (!s) throw new DomicileError('BAD_REQUEST', 'the session has ended');
    return this.#cache.use(s.ref, (h) => {
      h.guard.setTxnControl(true);
      try {
        return { result: this.#step(h, s, stmt, opts), autocommit: !h.db.inTransaction };
      } catch (err) {
        return { error: toDomicile(h, err).serialize(), autocommit: !h.db.inTransaction };
      } finally {
        h.guard.setTxnControl(false);
        if (!h.db.inTransaction) {
          s.txidAtBegin = undefined;
          s.wrote = false;
        }
      }
    });
  }

  /** Hrana `describe` on the session's connection (it sees the open transaction's schema); nothing runs. */
  describe(sessionId: string, sql: string): DescribeValue {
    const s = this.#sessions.get(sessionId);
    if (!s) throw new DomicileError('BAD_REQUEST', 'the session has ended');
    return this.#cache.use(s.ref, (h) => describeStatement(h, sql));
  }

  /** End a session: roll back an open transaction, unpin. Returns 1 when a transaction was rolled back. */
  close(sessionId: string): number {
    const s = this.#sessions.get(sessionId);
    if (!s) return 0;
    this.#sessions.delete(sessionId);
    let rolledBack = 0;
    try {
      // Never re-open a handle just to close a session (it may have been erased).
      if (this.#cache.has(s.ref.tenant)) {
        this.#cache.use(s.ref, (h) => {
          h.guard.setTxnControl(false);
          if (h.db.inTransaction) {
            h.guard.trusted(() => h.own.rollback.run());
            rolledBack = 1;
          }
        });
      }
    } finally {
      this.#cache.unpin(s.ref.tenant);
    }
    return rolledBack;
  }

  #step(h: ShardHandle, s: WorkerSession, stmt: Statement, opts: ExecOptions) {
    if (!h.db.inTransaction) {
      // Autocommit: the /query path (a write is its own transaction with its txid bump), except BEGIN.
      const result = typeof stmt.sql === 'string' && BEGIN.test(stmt.sql)
        ? this.#runTenant(h, stmt, opts)
        : executeOne(h, stmt, opts, this.#limits);
      if (h.db.inTransaction) {
        s.txidAtBegin = readTxid(h);
        s.wrote = false;
      }
      return result;
    }
    s.txidAtBegin ??= readTxid(h);
    return this.#runTenant(h, stmt, opts, (prepared) => {
      if (!prepared.readonly) {
        // Set before running: INSERT OR FAIL keeps the rows it wrote before failing.
        s.wrote = true;
      } else if (!prepared.reader && s.wrote && readTxid(h) === s.txidAtBegin) {
        // May end the transaction (COMMIT, END, RELEASE, ROLLBACK): the bump rides with it.
        wrap(h, () => h.guard.trusted(() => h.own.bumpTxid.run()));
      }
    });
  }

  /** Prepare (guarded), check the read-only rule, run `before`, then run the statement itself. */
  #runTenant(h: ShardHandle, stmt: Statement, opts: ExecOptions, before?: (prepared: SqliteStatement) => void) {
    const prepared = prepareTenant(h, stmt.sql);
    const params = toBindParams(stmt.params);
    // BEGIN IMMEDIATE counts as a write to SQLite; a read-only session may still begin a transaction.
    if (!BEGIN.test(stmt.sql)) refuseWriteIfReadOnly(prepared, opts);
    before?.(prepared);
    return strip(wrap(h, () => run(h, prepared, params, this.#limits, this.#limits.maxResultBytes)));
  }
}
