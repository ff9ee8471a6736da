/**
 * The statement guard (DESIGN §3 invariant 4, §7): loads the native extension
 * built from `native/guard.c` into a tenant connection and drives it through
 * its control function. What it denies, the limits and the watchdog are
 * described in docs/statement-guard.md.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Database } from 'better-sqlite3';
import { isDomicileError, domicileError, type DomicileError } from '@domicile/errors';

const EXTENSION_URL = new URL('../native/build/domicile_guard.so', import.meta.url);
const ENTRY_POINT = 'sqlite3_domicileguard_init';
/** Must match CONTROL_SQL in native/guard.c byte for byte (its starts keep the pending denial). */
const CONTROL_SQL = 'SELECT _domicile_guard(?, ?, ?)';

/** SQLite result codes that are the node's trouble, not the tenant's. */
const INTERNAL_CODES = ['SQLITE_IOERR', 'SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_CANTOPEN', 'SQLITE_NOMEM'];

/** Absolute path of the compiled extension; throws a DomicileError('INTERNAL', 'statement guard not built: run pnpm install') if missing. */
export function guardExtensionPath(): string {
  const path = fileURLToPath(EXTENSION_URL);
  if (!existsSync(path)) throw domicileError('INTERNAL', 'statement guard not built: run pnpm install', { path });
  return path;
}

/** How one connection is guarded. */
export interface GuardOptions {
  /** Statement timeout in ms enforced by the watchdog; 0 = none. */
  timeoutMs: number;
  /** Watchdog group (one per worker thread): connections of a group share one watchdog thread. */
  group: number;
  /**
   * Replication (DESIGN §8): set `SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`, so closing
   * the connection never checkpoints the WAL nor deletes `-wal`. Default false
   * (SQLite's behaviour: the last connection's close checkpoints).
   */
  noCheckpointOnClose?: boolean;
}

/** Handle on one guarded connection. */
export interface Guard {
  /** Run fn with every rule bypassed (Domicile's own statements). Re-entrant safe; always restores the previous state. */
  trusted<T>(fn: () => T): T;
  /** Allow BEGIN/COMMIT/SAVEPOINT from tenant SQL (interactive transactions). */
  setTxnControl(allowed: boolean): void;
  /** Whether transaction control is allowed right now: statements prepared meanwhile are not cached (execute.ts). */
  readonly txnControl: boolean;
  /** Statement timeout in ms for statements started from now on; 0 = none. */
  setTimeout(ms: number): void;
  /**
   * Turn an error thrown by tenant SQL into a DomicileError: SQLITE_AUTH (or
   * SQLITE_ERROR after a denial, as for a denied function) →
   * STATEMENT_NOT_ALLOWED with the denial reason; SQLITE_INTERRUPT →
   * QUERY_TIMEOUT; SQLITE_FULL → QUOTA_EXCEEDED; I/O, corruption and memory
   * errors → INTERNAL; any other SQLite error → SQL_ERROR with
   * `details.sqliteCode` and SQLite's text in `message` only (it may echo
   * tenant literals: logs omit messages); better-sqlite3's own RangeError and
   * TypeError (several statements, bad parameters) → BAD_REQUEST.
   */
  classify(err: unknown): DomicileError;
}

/** `Database.loadExtension` as better-sqlite3 12 has it. */
interface ExtensionLoader {
  loadExtension(path: string, entryPoint?: string): unknown;
}

/** The part of a better-sqlite3 statement the guard uses. */
interface ControlStatement {
  get(...params: unknown[]): unknown;
}

/** Load the extension into db, claim its secret, apply limits, join the watchdog group. Call right after opening, before any tenant SQL. */
export function installGuard(db: Database, opts: GuardOptions): Guard {
  checkOptions(opts);
  try {
    // better-sqlite3 12 takes an entry point; @types/better-sqlite3 7 does not declare it.
    (db as unknown as ExtensionLoader).loadExtension(guardExtensionPath(), ENTRY_POINT);
  } catch (err) {
    if (isDomicileError(err)) throw err;
    throw domicileError('INTERNAL', 'cannot load the statement guard', {}, err);
  }
  const stmt = db.prepare(CONTROL_SQL).pluck() as unknown as ControlStatement;
  const secret = stmt.get('', 'secret', null);
  if (typeof secret !== 'string' || secret.length !== 32) {
    throw domicileError('INTERNAL', 'statement guard secret already claimed');
  }
  const guard = new ConnectionGuard(stmt, secret);
  guard.setTimeout(opts.timeoutMs);
  guard.control('group', opts.group);
  if (opts.noCheckpointOnClose) {
    if (Number(guard.control('no_ckpt_on_close', 1)) !== 1) throw domicileError('INTERNAL', 'statement guard: cannot set NO_CKPT_ON_CLOSE');
  }
  return guard;
}

function checkOptions(opts: GuardOptions): void {
  if (!Number.isInteger(opts.timeoutMs) || opts.timeoutMs < 0 || opts.timeoutMs > 86_400_000) {
    throw domicileError('INTERNAL', `statement guard: timeoutMs must be an integer in [0, 86400000], got ${opts.timeoutMs}`);
  }
  if (!Number.isSafeInteger(opts.group)) {
    throw domicileError('INTERNAL', `statement guard: group must be an integer, got ${opts.group}`);
  }
}

class ConnectionGuard implements Guard {
  readonly #stmt: ControlStatement;
  readonly #secret: string;
  #trusted = false;
  #txnControl = false;

  constructor(stmt: ControlStatement, secret: string) {
    this.#stmt = stmt;
    this.#secret = secret;
  }

  /** Run one op of `_domicile_guard` with the connection's secret. */
  control(op: string, arg: number | null = null): unknown {
    return this.#stmt.get(this.#secret, op, arg);
  }

  trusted<T>(fn: () => T): T {
    if (this.#trusted) return fn();
    this.control('trusted', 1);
    this.#trusted = true;
    try {
      return fn();
    } finally {
      this.#trusted = false;
      this.control('trusted', 0);
    }
  }

  setTxnControl(allowed: boolean): void {
    this.control('txn', allowed ? 1 : 0);
    this.#txnControl = allowed;
  }

  get txnControl(): boolean {
    return this.#txnControl;
  }

  setTimeout(ms: number): void {
    if (!Number.isInteger(ms) || ms < 0 || ms > 86_400_000) {
      throw domicileError('INTERNAL', `statement guard: timeout must be an integer in [0, 86400000] ms, got ${ms}`);
    }
    this.control('timeout', ms);
  }

  classify(err: unknown): DomicileError {
    if (isDomicileError(err)) return err;
    const code = (err as { code?: unknown } | null)?.code;
    const message = err instanceof Error ? err.message : String(err);
    if (typeof code !== 'string' || !code.startsWith('SQLITE_')) {
      if (err instanceof RangeError || err instanceof TypeError) return domicileError('BAD_REQUEST', message, {}, err);
      return domicileError('INTERNAL', 'statement failed', {}, err);
    }
    if (code === 'SQLITE_AUTH' || code.startsWith('SQLITE_AUTH_')) {
      return domicileError('STATEMENT_NOT_ALLOWED', this.#read('denial') ?? 'the statement is not allowed for tenant SQL', {}, err);
    }
    if (code === 'SQLITE_ERROR') {
      // A denied function fails the prepare with SQLITE_ERROR ("not authorized to use function").
      const reason = this.#read('denial');
      if (reason !== undefined) return domicileError('STATEMENT_NOT_ALLOWED', reason, {}, err);
    }
    if (code === 'SQLITE_INTERRUPT') {
      this.#read('timedout');
      return domicileError('QUERY_TIMEOUT', undefined, {}, err);
    }
    if (code === 'SQLITE_FULL') return domicileError('QUOTA_EXCEEDED', undefined, {}, err);
    if (INTERNAL_CODES.some((c) => code === c || code.startsWith(`${c}_`))) {
      return domicileError('INTERNAL', 'storage error', { sqliteCode: code }, err);
    }
    return domicileError('SQL_ERROR', message, { sqliteCode: code }, err);
  }

  /** A read op that must not turn a classification into a second failure (e.g. an iterator holds the connection). */
  #read(op: 'denial' | 'timedout'): string | undefined {
    try {
      const v = this.control(op);
      return typeof v === 'string' ? v : undefined;
    } catch {
      return undefined;
    }
  }
}

/** Most lookaside slots the connection has used: 0, because the guard turns lookaside off (guard.c; tests). */
export function lookasideHighwater(guard: Guard): number {
  return Number((guard as ConnectionGuard).control('lookaside'));
}

/** Number of live watchdog threads in this process (tests and metrics). */
export function watchdogThreads(guard: Guard): number {
  return Number((guard as ConnectionGuard).control('threads'));
}
