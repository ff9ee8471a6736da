/**
 * Opening and creating shard handles. Runs only on a worker thread. The order
 * matters: the statement guard is installed right after the file is opened and
 * before any tenant SQL, then Domicile's own setup runs in trusted mode.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Database as SqliteDatabase, Statement as SqliteStatement } from 'better-sqlite3';
import { DomicileError } from '@domicile/errors';
import { installGuard, type Guard } from './guard.ts';
import { SHARD_FILE_SUFFIXES } from './shard-path.ts';
import type { ShardRef } from './types.ts';

/** Per-handle page cache in KiB (negative = KiB in SQLite). SQLite's default is also 2 MiB; thousands of idle handles make it the main memory cost. */
export const CACHE_SIZE_KIB = 2000;

/**
 * WAL auto-checkpoint in pages when replication is off. With replication on
 * (DESIGN §8) it is 0: the replicator checkpoints after shipping frames.
 */
export const WAL_AUTOCHECKPOINT_PAGES = 1000;

/** Busy timeout: only a re-homed tenant's idle handle can ever hold a lock, briefly (a checkpoint). */
export const BUSY_TIMEOUT_MS = 1000;

/** Version of the `_domicile_meta` layout written at creation. */
export const META_FORMAT = 1;

/** Limits a worker applies to every handle it opens. */
export interface ShardLimits {
  statementTimeoutMs: number;
  maxDbBytes: number;
  /** Worker index, the guard's watchdog group. */
  group: number;
  /**
   * Replication on (DESIGN §8): `wal_autocheckpoint = 0` and no checkpoint on
   * close (guard.c), so only the replicator's checkpoints fold the WAL. Off:
   * SQLite's defaults (auto-checkpoint, checkpoint on the last close).
   */
  replication?: boolean;
}

/** Domicile's own statements on one handle, prepared once in trusted mode; run them only inside `guard.trusted`. */
export interface OwnStatements {
  begin: SqliteStatement;
  beginImmediate: SqliteStatement;
  commit: SqliteStatement;
  rollback: SqliteStatement;
  bumpTxid: SqliteStatement;
  changes: SqliteStatement;
}

/** An open shard: the connection, its guard and the prepared statements Domicile needs. */
export interface ShardHandle {
  readonly tenant: string;
  readonly incarnation: string;
  readonly path: string;
  readonly db: SqliteDatabase;
  readonly guard: Guard;
  readonly own: OwnStatements;
}

/** Row of `_domicile_meta`. */
interface MetaRow {
  tenant: string;
  incarnation: string;
  epoch: number;
  txid: number;
}

/**
 * Open an existing shard. A missing file is TENANT_NOT_FOUND; a file that
 * belongs to another tenant or incarnation is INTERNAL and never served.
 */
export function openShard(ref: ShardRef, limits: ShardLimits): ShardHandle {
  // better-sqlite3 reports a missing file or directory in several ways; ask first.
  if (!existsSync(ref.path)) throw new DomicileError('TENANT_NOT_FOUND', 'no shard file for this tenant on this node');
  let db: SqliteDatabase;
  try {
    db = new Database(ref.path, { fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw new DomicileError('INTERNAL', 'cannot open shard file', {}, { cause: err });
  }
  try {
    const guard = installGuard(db, { timeoutMs: limits.statementTimeoutMs, group: limits.group, noCheckpointOnClose: limits.replication === true });
    guard.trusted(() => configure(db, limits));
    const meta = guard.trusted(() => readMeta(db));
    if (meta.tenant !== ref.tenant) throw new DomicileError('INTERNAL', 'shard file belongs to another tenant');
    if (meta.incarnation !== ref.incarnation) throw new DomicileError('INTERNAL', 'shard belongs to another incarnation');
    return { tenant: ref.tenant, incarnation: ref.incarnation, path: ref.path, db, guard, own: guard.trusted(() => prepareOwn(db)) };
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * Create a new shard file with its `_domicile_meta` row (txid 0). Refuses with
 * INTERNAL "stale shard file" when the file or any companion (-wal, -shm,
 * -journal) exists: a leftover -wal would be replayed into the new database.
 */
export function createShard(ref: ShardRef, limits: ShardLimits): ShardHandle {
  for (const suffix of SHARD_FILE_SUFFIXES) {
    if (existsSync(ref.path + suffix)) throw new DomicileError('INTERNAL', 'stale shard file', { file: `*.db${suffix}` });
  }
  mkdirSync(dirname(ref.path), { recursive: true });
  const db = new Database(ref.path, { timeout: BUSY_TIMEOUT_MS });
  try {
    const guard = installGuard(db, { timeoutMs: limits.statementTimeoutMs, group: limits.group, noCheckpointOnClose: limits.replication === true });
    guard.trusted(() => {
      configure(db, limits);
      db.exec(`CREATE TABLE _domicile_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        tenant TEXT NOT NULL,
        incarnation TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        txid INTEGER NOT NULL,
        format INTEGER NOT NULL,
        created_at TEXT NOT NULL
      ) STRICT`);
      db.prepare('INSERT INTO _domicile_meta VALUES (1, ?, ?, ?, 0, ?, ?)')
        .run(ref.tenant, ref.incarnation, ref.epoch, META_FORMAT, new Date().toISOString());
    });
    return { tenant: ref.tenant, incarnation: ref.incarnation, path: ref.path, db, guard, own: guard.trusted(() => prepareOwn(db)) };
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * Connection settings (DESIGN §7). `foreign_keys` keeps SQLite's default OFF:
 * it is per connection, so a tenant's `PRAGMA foreign_keys=ON` lasts only as
 * long as the handle (see docs/shards.md).
 */
function configure(db: SqliteDatabase, limits: ShardLimits): void {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  // SQLite's temp directory is process-wide and cannot follow regions (DESIGN §7).
  db.pragma('temp_store = MEMORY');
  db.pragma(`cache_size = -${CACHE_SIZE_KIB}`);
  db.pragma(`wal_autocheckpoint = ${limits.replication ? 0 : WAL_AUTOCHECKPOINT_PAGES}`);
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  db.pragma(`max_page_count = ${Math.max(1, Math.floor(limits.maxDbBytes / pageSize))}`);
}

function readMeta(db: SqliteDatabase): MetaRow {
  try {
    const row = db.prepare('SELECT tenant, incarnation, epoch, txid FROM _domicile_meta WHERE id = 1').get() as MetaRow | undefined;
    if (row) return row;
  } catch (err) {
    throw new DomicileError('INTERNAL', 'not a Domicile shard (no _domicile_meta)', {}, { cause: err });
  }
  throw new DomicileError('INTERNAL', 'not a Domicile shard (empty _domicile_meta)');
}

function prepareOwn(db: SqliteDatabase): OwnStatements {
  return {
    begin: db.prepare('BEGIN'),
    beginImmediate: db.prepare('BEGIN IMMEDIATE'),
    commit: db.prepare('COMMIT'),
    rollback: db.prepare('ROLLBACK'),
    // `main.`: a tenant temp table renamed to _domicile_meta (with a temp trigger) would otherwise capture this trusted write (reserved-table.ts).
    bumpTxid: db.prepare('UPDATE main._domicile_meta SET txid = txid + 1 WHERE id = 1'),
    changes: db.prepare('SELECT changes(), last_insert_rowid()').raw(true).safeIntegers(true),
  };
}
