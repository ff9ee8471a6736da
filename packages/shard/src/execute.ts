/**
 * Running tenant statements on an open handle (DESIGN §5, §7). Tenant SQL is
 * prepared outside `guard.trusted` (the authorizer runs at prepare time);
 * Domicile's own BEGIN/COMMIT/ROLLBACK and txid bookkeeping run inside it.
 * Every committed write transaction bumps `_domicile_meta.txid` once, in the
 * same transaction.
 */
import type { Statement as SqliteStatement } from 'better-sqlite3';
import { DomicileError, isDomicileError } from '@domicile/errors';
import type { ShardHandle } from './open-shard.ts';
import type { ExecOptions, Statement, StatementResult, WireValue } from './types.ts';
import { estimateJsonBytes, toBindParams, toWireValue, type BindParams } from './values.ts';

/** Per-request limits. */
export interface ExecLimits {
  maxResultBytes: number;
}

/**
 * Called inside a write transaction, after the request's statements and
 * before its txid bump and COMMIT, so whatever it writes commits or vanishes
 * with them (the idempotency record, idempotency.ts). Runs in trusted mode;
 * not called for requests that wrote nothing.
 */
export interface ExecHooks {
  beforeCommit?(result: StatementResult | StatementResult[]): void;
}

/** Statements SQLite refuses (VACUUM) or ignores (PRAGMA foreign_keys) inside a transaction: they run in autocommit. */
const AUTOCOMMIT_ONLY = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*(?:pragma|vacuum)\b/i;

/** One statement as its own transaction (`/query`). */
export function executeOne(h: ShardHandle, stmt: Statement, opts: ExecOptions, limits: ExecLimits, hooks: ExecHooks = {}): StatementResult {
  const prepared = prepareTenantCached(h, stmt.sql);
  const params = toBindParams(stmt.params);
  refuseWriteIfReadOnly(prepared, opts);
  if (prepared.readonly) return strip(wrap(h, () => run(h, prepared, params, limits, limits.maxResultBytes)));
  if (isAutocommitOnly(stmt.sql)) {
    const result = strip(wrap(h, () => run(h, prepared, params, limits, limits.maxResultBytes)));
    // The statement committed on its own; record it as a transaction of its own.
    if (!hooks.beforeCommit) wrap(h, () => h.guard.trusted(() => h.own.bumpTxid.run()));
    // With a hook, its writes share that transaction: not atomic with the statement (docs/shards.md, "Idempotency keys").
    else inTransaction(h, true, () => ({ result, wrote: true }), hooks.beforeCommit);
    return result;
  }
  return inTransaction(h, true, () => {
    const result = strip(wrap(h, () => run(h, prepared, params, limits, limits.maxResultBytes)));
    return { result, wrote: true };
  }, hooks.beforeCommit);
}

/** Whether a statement must run in autocommit (PRAGMA, VACUUM): it cannot share a transaction. */
export function isAutocommitOnly(sql: unknown): boolean {
  return typeof sql === 'string' && AUTOCOMMIT_ONLY.test(sql);
}

/**
 * A `/query` statement inside a transaction someone else opened (group
 * commit): no BEGIN/COMMIT here. `wrote` is whether it may have written.
 */
export function runQueryBody(h: ShardHandle, stmt: Statement, opts: ExecOptions, limits: ExecLimits): { result: StatementResult; wrote: boolean } {
  const prepared = prepareTenantCached(h, stmt.sql);
  const params = toBindParams(stmt.params);
  refuseWriteIfReadOnly(prepared, opts);
  return { result: strip(wrap(h, () => run(h, prepared, params, limits, limits.maxResultBytes))), wrote: !prepared.readonly };
}

/** Statements in one transaction, all or nothing (`/batch`); a failure carries `details.statementIndex`. */
export function executeBatch(h: ShardHandle, stmts: Statement[], opts: ExecOptions, limits: ExecLimits, hooks: ExecHooks = {}): StatementResult[] {
  if (stmts.length === 0) return [];
  return inTransaction(h, !opts.readOnly, () => runBatchBody(h, stmts, opts, limits), hooks.beforeCommit);
}

/** The statements of a `/batch` inside an open transaction; a failure carries `details.statementIndex` (the caller rolls back). */
export function runBatchBody(h: ShardHandle, stmts: Statement[], opts: ExecOptions, limits: ExecLimits): { result: StatementResult[]; wrote: boolean } {
  const results: StatementResult[] = [];
  let wrote = false;
  let budget = limits.maxResultBytes;
  for (let i = 0; i < stmts.length; i++) {
    try {
      const s = stmts[i]!;
      const prepared = prepareTenantCached(h, s.sql);
      const params = toBindParams(s.params);
      refuseWriteIfReadOnly(prepared, opts);
      const result = wrap(h, () => run(h, prepared, params, limits, budget));
      budget -= result.bytes;
      wrote ||= !prepared.readonly;
      results.push(strip(result));
    } catch (err) {
      const e = toDomicile(h, err);
      throw new DomicileError(e.code, e.message, { ...e.details, statementIndex: i }, { cause: err });
    }
  }
  return { result: results, wrote };
}

/** Prepare tenant SQL (untrusted: the guard's authorizer decides). */
export function prepareTenant(h: ShardHandle, sql: unknown): SqliteStatement {
  if (typeof sql !== 'string') throw new DomicileError('BAD_REQUEST', 'sql must be a string');
  return wrap(h, () => h.db.prepare(sql));
}

/** Statements kept per handle (most recently used); a tenant's hot paths are a handful of SQL texts. */
export const STATEMENT_CACHE_SIZE = 32;
/** Longer SQL is prepared every time (bounds the cache's memory: 32 × 4 KiB of text per handle). */
export const STATEMENT_CACHE_MAX_SQL = 4096;
const statementCaches = new WeakMap<ShardHandle, Map<string, SqliteStatement>>();

/**
 * `prepareTenant` through a small per-handle cache keyed by the SQL text:
 * preparing is about a third of a single-row write's worker time. Safe
 * because the guard decides at prepare time and its rules for tenant SQL are
 * fixed, except transaction control: a statement prepared while a session
 * allows it (BEGIN, COMMIT, SAVEPOINT) is never cached, so it cannot be run
 * later outside the session. Only prepares that succeeded are cached (a
 * denial is never remembered), a cached statement is re-prepared by SQLite
 * itself after a schema change (the authorizer runs again), and closing the
 * handle finalizes them all. Returns a statement no one else is running: the
 * worker runs one statement of a handle at a time and readers are drained or
 * closed before `run` returns.
 */
export function prepareTenantCached(h: ShardHandle, sql: unknown): SqliteStatement {
  if (typeof sql !== 'string' || sql.length > STATEMENT_CACHE_MAX_SQL || h.guard.txnControl) return prepareTenant(h, sql);
  let cache = statementCaches.get(h);
  const hit = cache?.get(sql);
  if (hit) {
    cache!.delete(sql);
    cache!.set(sql, hit);
    return hit;
  }
  const prepared = prepareTenant(h, sql);
  if (!cache) statementCaches.set(h, (cache = new Map()));
  cache.set(sql, prepared);
  if (cache.size > STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
  return prepared;
}

/** Statements cached for a handle (tests). */
export function cachedStatementCount(h: ShardHandle): number {
  return statementCaches.get(h)?.size ?? 0;
}

/** FORBIDDEN for a statement that would write under a read-only token. */
export function refuseWriteIfReadOnly(prepared: SqliteStatement, opts: ExecOptions): void {
  if (opts.readOnly && !prepared.readonly) throw new DomicileError('FORBIDDEN', 'read-only token cannot write');
}

/**
 * Run `body` between a trusted BEGIN (IMMEDIATE for writers: one writer per
 * shard, so it never waits) and COMMIT, bumping the txid (after `beforeCommit`) when it wrote. Any
 * failure rolls back, unless SQLite already did (interrupt, disk full,
 * RAISE(ROLLBACK)).
 */
function inTransaction<T>(h: ShardHandle, write: boolean, body: () => { result: T; wrote: boolean }, beforeCommit?: (result: T) => void): T {
  wrap(h, () => h.guard.trusted(() => (write ? h.own.beginImmediate : h.own.begin).run()));
  try {
    const { result, wrote } = body();
    wrap(h, () => h.guard.trusted(() => {
      if (!h.db.inTransaction) throw new DomicileError('INTERNAL', 'transaction ended unexpectedly');
      if (wrote) {
        beforeCommit?.(result);
        h.own.bumpTxid.run();
      }
      h.own.commit.run();
    }));
    return result;
  } catch (err) {
    rollback(h);
    throw err;
  }
}

/** Roll back the open transaction, if SQLite has not already; a failure to do so is ignored (the original error matters). */
export function rollback(h: ShardHandle): void {
  if (!h.db.inTransaction) return;
  try {
    h.guard.trusted(() => h.own.rollback.run());
  } catch {
    // A failed ROLLBACK leaves SQLite to roll back on the next statement or close; the original error matters.
  }
}

/** A result and its estimated JSON size; a batch's statements share one cap. */
type SizedResult = StatementResult & { bytes: number };

/** Execute one prepared statement: readers stream rows up to the byte cap, the rest report changes. */
export function run(h: ShardHandle, prepared: SqliteStatement, params: BindParams, limits: ExecLimits, budget: number): SizedResult {
  if (!prepared.reader) {
    prepared.safeIntegers(true);
    const info = Array.isArray(params) ? prepared.run(...params) : prepared.run(params);
    return {
      columns: [],
      columnTypes: [],
      rows: [],
      rowsAffected: info.changes,
      lastInsertRowid: toWireValue(info.lastInsertRowid),
      bytes: 0,
    };
  }
  prepared.safeIntegers(true).raw(true);
  const rows: WireValue[][] = [];
  let bytes = 2;
  const it = (Array.isArray(params) ? prepared.iterate(...params) : prepared.iterate(params)) as IterableIterator<unknown[]>;
  try {
    for (const row of it) {
      bytes += 3;
      for (const v of row) bytes += estimateJsonBytes(v) + 1;
      if (bytes > budget) {
        throw new DomicileError('RESULT_TOO_LARGE', `the result exceeds ${limits.maxResultBytes} bytes`, { maxResultBytes: limits.maxResultBytes });
      }
      rows.push(row.map(toWireValue));
    }
  } finally {
    it.return?.();
  }
  // After running: a cached statement that SQLite re-prepared for a schema change (SELECT * after ALTER TABLE) has new columns.
  const cols = prepared.columns();
  let rowsAffected = 0;
  let lastInsertRowid: WireValue = null;
  if (!prepared.readonly) {
    // INSERT ... RETURNING: a reader that writes.
    const [changes, rowid] = h.guard.trusted(() => h.own.changes.get()) as [bigint, bigint];
    rowsAffected = Number(changes);
    lastInsertRowid = toWireValue(rowid);
  }
  return { columns: cols.map((c) => c.name), columnTypes: cols.map((c) => c.type), rows, rowsAffected, lastInsertRowid, bytes };
}

/** Drop the size estimate of a result. */
export function strip({ bytes: _bytes, ...result }: SizedResult): StatementResult {
  return result;
}

/** Run `fn`, turning SQLite and better-sqlite3 errors into DomicileErrors. */
export function wrap<T>(h: ShardHandle, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw toDomicile(h, err);
  }
}

/** Classify anything thrown while running tenant SQL as a DomicileError. */
export function toDomicile(h: ShardHandle, err: unknown): DomicileError {
  if (isDomicileError(err)) return err;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('SQLITE_')) return h.guard.classify(err);
  // better-sqlite3 validates bindings and SQL text itself (missing parameter, several statements, no statement).
  if (err instanceof RangeError || err instanceof TypeError) {
    return new DomicileError('BAD_REQUEST', err.message, {}, { cause: err });
  }
  return new DomicileError('INTERNAL', 'statement failed', {}, { cause: err });
}
