/**
 * Executing the requests of one Hrana pipeline on a stream. In autocommit a
 * statement takes the ordinary pool path (`/query`: same guard, same
 * read-only rule). A statement that controls a transaction (BEGIN, SAVEPOINT,
 * COMMIT, END, ROLLBACK, RELEASE) opens a shard session first; the stream's
 * statements run in it until the connection is back in autocommit, then the
 * session closes and the tenant is free again. Recognising those keywords
 * only routes the statement: the statement guard still decides what may run,
 * and a miss fails safe (STATEMENT_NOT_ALLOWED outside a session).
 */
import { DomicileError, isDomicileError } from '@domicile/errors';
import type { ShardPool, Statement, StatementResult } from '@domicile/shard';
import type { HranaStream } from './hrana-streams.ts';
import { MAX_STORED_SQL } from './hrana-streams.ts';
import { isExplain, splitStatements, statementParams } from './hrana-sql.ts';
import { fromHranaArgs, toHranaResult, type HranaStmt, type HranaStmtResult } from './hrana-values.ts';

const TXN_CONTROL = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*(?:begin|savepoint|commit|end|rollback|release)\b/i;
/** What @libsql/client sends for `transaction('read')` (libSQL syntax, not SQLite's). */
const LIBSQL_BEGIN_READONLY = /^\s*begin\s+transaction\s+readonly\s*;?\s*$/i;

/** A Hrana error object. */
export interface HranaError {
  message: string;
  code: string;
}

/** One entry of a pipeline answer. */
export type StreamResult = { type: 'ok'; response: Record<string, unknown> } | { type: 'error'; error: HranaError };

/** What a pipeline needs besides the stream. */
export interface PipelineContext {
  pool: ShardPool;
  /** The caller's token is read-scoped. */
  readOnly: boolean;
  /** Closes the stream (rolls back its transaction). */
  closeStream(s: HranaStream): Promise<void>;
  /** Reports a failure that is a bug (INTERNAL) for the log. */
  logInternal(err: unknown): void;
}

/** A DomicileError (or anything) as a Hrana error object. */
export function toHranaError(err: unknown, logInternal?: (err: unknown) => void): HranaError {
  if (isDomicileError(err)) {
    if (err.code === 'INTERNAL') logInternal?.(err);
    return { message: err.message, code: err.code };
  }
  logInternal?.(err);
  return { message: 'internal error', code: 'INTERNAL' };
}

/** Run a pipeline's requests in order; each gets its own result, a failure does not stop the next one. */
export async function runPipeline(ctx: PipelineContext, s: HranaStream, requests: unknown[]): Promise<StreamResult[]> {
  const out: StreamResult[] = [];
  for (const req of requests) {
    try {
      out.push({ type: 'ok', response: await runRequest(ctx, s, req) });
    } catch (err) {
      out.push({ type: 'error', error: toHranaError(err, ctx.logInternal) });
    }
  }
  return out;
}

async function runRequest(ctx: PipelineContext, s: HranaStream, req: unknown): Promise<Record<string, unknown>> {
  if (!req || typeof req !== 'object') throw new DomicileError('BAD_REQUEST', 'each request must be an object');
  const r = req as Record<string, unknown>;
  if (s.closed) throw new DomicileError('BAD_REQUEST', 'the stream is closed');
  if (s.broken && r.type !== 'close') throw s.broken;
  switch (r.type) {
    case 'execute': {
      const stmt = asStmt(r.stmt);
      const result = await execute(ctx, s, stmt);
      return { type: 'execute', result: toHranaResult(result, stmt.want_rows !== false) };
    }
    case 'batch':
      return { type: 'batch', result: await batch(ctx, s, r.batch) };
    case 'store_sql': {
      const id = sqlId(r.sql_id);
      if (typeof r.sql !== 'string') throw new DomicileError('BAD_REQUEST', 'store_sql needs sql');
      if (!s.sqls.has(id) && s.sqls.size >= MAX_STORED_SQL) throw new DomicileError('BAD_REQUEST', `a stream stores at most ${MAX_STORED_SQL} SQL texts`);
      s.sqls.set(id, r.sql);
      return { type: 'store_sql' };
    }
    case 'close_sql':
      s.sqls.delete(sqlId(r.sql_id));
      return { type: 'close_sql' };
    case 'close':
      await ctx.closeStream(s);
      return { type: 'close' };
    case 'get_autocommit':
      return { type: 'get_autocommit', is_autocommit: s.session === undefined };
    case 'sequence':
      await sequence(ctx, s, resolveSql(s, r));
      return { type: 'sequence' };
    case 'describe':
      return { type: 'describe', result: await describe(ctx, s, resolveSql(s, r)) };
    default:
      throw new DomicileError('BAD_REQUEST', `unknown Hrana request type ${JSON.stringify(String(r.type)).slice(0, 40)}`);
  }
}

/** Execute one statement on the stream: in its session when one is open or the statement controls a transaction. */
async function execute(ctx: PipelineContext, s: HranaStream, stmt: HranaStmt): Promise<StatementResult> {
  let sql = resolveSql(s, stmt);
  const params = fromHranaArgs(stmt);
  if (s.session === undefined && !TXN_CONTROL.test(sql)) {
    return ctx.pool.query(s.ref, withParams(sql, params), { readOnly: ctx.readOnly });
  }
  let readOnlyTxn = s.readOnlyTxn;
  if (s.session === undefined && LIBSQL_BEGIN_READONLY.test(sql)) {
    sql = 'BEGIN DEFERRED';
    readOnlyTxn = true;
  }
  s.session ??= await ctx.pool.openSession(s.ref);
  const session = s.session;
  try {
    const result = await ctx.pool.sessionExecute(session, withParams(sql, params), { readOnly: ctx.readOnly || readOnlyTxn });
    s.readOnlyTxn = readOnlyTxn;
    return result;
  } catch (err) {
    if (ctx.pool.sessionInfo(session) === undefined && s.session === session) {
      // The session ended under us (expired, erased, crash): never let later statements run outside the transaction.
      s.session = undefined;
      s.broken = new DomicileError('BAD_REQUEST', 'the stream expired and its transaction was rolled back; open a new stream');
      throw s.broken;
    }
    throw err;
  } finally {
    const info = ctx.pool.sessionInfo(session);
    if (info?.autocommit && s.session === session) {
      s.session = undefined;
      s.readOnlyTxn = false;
      await ctx.pool.closeSession(session);
    }
  }
}

/** Statements in one `sequence`. */
export const MAX_SEQUENCE_STATEMENTS = 10_000;

/**
 * A Hrana `sequence`: the script's statements, split where SQLite would, run
 * one by one through `execute` (same guard, read-only rule, session routing
 * and result cap; rows are dropped). The first failure stops it and is its
 * error; what ran before stays (in autocommit each statement committed).
 */
async function sequence(ctx: PipelineContext, s: HranaStream, sql: string): Promise<void> {
  const statements = splitStatements(sql);
  if (statements.length > MAX_SEQUENCE_STATEMENTS) {
    throw new DomicileError('BAD_REQUEST', `a sequence takes at most ${MAX_SEQUENCE_STATEMENTS} statements`);
  }
  for (let i = 0; i < statements.length; i++) {
    try {
      await execute(ctx, s, { sql: statements[i]! });
    } catch (err) {
      if (!isDomicileError(err) || s.broken === err) throw err;
      // Hrana errors carry only message and code: the message names the statement.
      throw new DomicileError(err.code, `${err.message} (statement ${i + 1} of the sequence)`, { ...err.details, statementIndex: i }, { cause: err });
    }
  }
}

/** Hrana's describe result. */
interface DescribeResult {
  params: { name: string | null }[];
  cols: { name: string; decltype: string | null }[];
  is_explain: boolean;
  is_readonly: boolean;
}

/**
 * A Hrana `describe`: the shard prepares the statement (guarded; in the
 * stream's session when it has one) and nothing runs. Parameters come from
 * Domicile's tokenizer (hrana-sql.ts), as SQLite numbers them.
 */
async function describe(ctx: PipelineContext, s: HranaStream, sql: string): Promise<DescribeResult> {
  const d = await ctx.pool.describe(s.ref, sql, s.session);
  return {
    params: statementParams(sql).map((name) => ({ name })),
    cols: d.columns,
    is_explain: isExplain(sql),
    is_readonly: d.readonly,
  };
}

interface BatchResult {
  step_results: (HranaStmtResult | null)[];
  step_errors: (HranaError | null)[];
}

/** A Hrana batch: steps in order, each run only when its condition holds. */
async function batch(ctx: PipelineContext, s: HranaStream, b: unknown): Promise<BatchResult> {
  if (!b || typeof b !== 'object' || !Array.isArray((b as { steps?: unknown }).steps)) {
    throw new DomicileError('BAD_REQUEST', 'batch needs steps');
  }
  const steps = (b as { steps: unknown[] }).steps;
  const out: BatchResult = { step_results: [], step_errors: [] };
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i] as { condition?: unknown; stmt?: unknown } | null;
    if (!step || typeof step !== 'object') throw new DomicileError('BAD_REQUEST', `batch step ${i} must be an object`);
    if (step.condition !== undefined && step.condition !== null && !holds(step.condition, i, out, s)) {
      out.step_results.push(null);
      out.step_errors.push(null);
      continue;
    }
    try {
      const stmt = asStmt(step.stmt);
      const result = await execute(ctx, s, stmt);
      out.step_results.push(toHranaResult(result, stmt.want_rows !== false));
      out.step_errors.push(null);
    } catch (err) {
      out.step_results.push(null);
      out.step_errors.push(toHranaError(err, ctx.logInternal));
    }
  }
  return out;
}

function holds(cond: unknown, current: number, out: BatchResult, s: HranaStream): boolean {
  if (!cond || typeof cond !== 'object') throw new DomicileError('BAD_REQUEST', 'a batch condition must be an object');
  const c = cond as { type?: unknown; step?: unknown; cond?: unknown; conds?: unknown };
  const earlier = (): number => {
    if (typeof c.step !== 'number' || !Number.isInteger(c.step) || c.step < 0 || c.step >= current) {
      throw new DomicileError('BAD_REQUEST', 'a batch condition may only name an earlier step');
    }
    return c.step;
  };
  switch (c.type) {
    case 'ok':
      return out.step_results[earlier()] !== null;
    case 'error':
      return out.step_errors[earlier()] !== null;
    case 'not':
      return !holds(c.cond, current, out, s);
    case 'and':
      if (!Array.isArray(c.conds)) throw new DomicileError('BAD_REQUEST', 'an "and" condition needs conds');
      return c.conds.every((x) => holds(x, current, out, s));
    case 'or':
      if (!Array.isArray(c.conds)) throw new DomicileError('BAD_REQUEST', 'an "or" condition needs conds');
      return c.conds.some((x) => holds(x, current, out, s));
    case 'is_autocommit':
      return s.session === undefined;
    default:
      throw new DomicileError('BAD_REQUEST', 'unknown batch condition type');
  }
}

function asStmt(v: unknown): HranaStmt {
  if (!v || typeof v !== 'object') throw new DomicileError('BAD_REQUEST', 'stmt must be an object');
  return v as HranaStmt;
}

function sqlId(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new DomicileError('BAD_REQUEST', 'sql_id must be an integer');
  return v;
}

function resolveSql(s: HranaStream, stmt: { sql?: unknown; sql_id?: unknown }): string {
  if (typeof stmt.sql === 'string') return stmt.sql;
  if (stmt.sql_id !== undefined && stmt.sql_id !== null) {
    const sql = s.sqls.get(sqlId(stmt.sql_id));
    if (sql === undefined) throw new DomicileError('BAD_REQUEST', `no SQL stored under sql_id ${stmt.sql_id}`);
    return sql;
  }
  throw new DomicileError('BAD_REQUEST', 'a statement needs sql or sql_id');
}

function withParams(sql: string, params: Statement['params']): Statement {
  return params === undefined ? { sql } : { sql, params };
}
