/**
 * Applying schema migrations to one shard (DESIGN §5 "Schema fan-out", §7).
 * Each migration not yet recorded in `_domicile_migrations` runs in a
 * transaction of its own, in list order:
 *
 *   trusted BEGIN IMMEDIATE → the migration's SQL, UNtrusted (the statement
 *   guard judges every statement of it, as for any tenant SQL) → trusted
 *   insert into `_domicile_migrations` + txid bump → trusted COMMIT.
 *
 * A failing migration is rolled back whole and the shard stops there: later
 * migrations are not tried, earlier ones stay committed. Applying a list again
 * runs only what is missing, so a re-run is a no-op (and writes nothing).
 */
import { createHash } from 'node:crypto';
import type { ErrorCode } from '@domicile/errors';
import { DomicileError } from '@domicile/errors';
import type { ShardHandle } from './open-shard.ts';
import { ensureReservedTable, reservedTableExists, type ReservedTable } from './reserved-table.ts';

/** Name of the reserved table recording the migrations a shard applied. */
export const MIGRATIONS_TABLE = '_domicile_migrations';

/**
 * Created lazily and verified before every use (reserved-table.ts): a tenant table renamed to
 * this name, triggers and all, must never receive Domicile's trusted writes.
 */
const TABLE: ReservedTable = Object.freeze({
  name: MIGRATIONS_TABLE,
  // Compared byte for byte with sqlite_schema.sql: keep the text stable.
  ddl: `CREATE TABLE ${MIGRATIONS_TABLE} (
  name TEXT PRIMARY KEY,
  checksum TEXT NOT NULL,
  applied_at TEXT NOT NULL,
  txid INTEGER NOT NULL
) STRICT`,
  extras: [],
});

/** One migration as a shard applies it. */
export interface ShardMigration {
  /** Unique, stable name (e.g. `0003_add_invoices`); the record's key. */
  name: string;
  /** One or more statements; run with `db.exec`, each statement authorized by the guard. */
  sql: string;
  /** `migrationChecksum(sql)`; recorded with the name, compared on every later run. */
  checksum: string;
}

/** Why a shard stopped applying its list. */
export interface MigrationFailure {
  /** The migration that failed; none of it is applied and later ones were not tried. */
  migration: string;
  /** Catalogue code: SQL_ERROR, STATEMENT_NOT_ALLOWED, QUERY_TIMEOUT, QUOTA_EXCEEDED, SCHEMA_CONFLICT, ... */
  code: ErrorCode;
  message: string;
  /** Details of the error (`sqliteCode`, checksums of a conflict, ...). */
  details: Record<string, unknown>;
}

/** Outcome of applying a migration list to one shard. */
export interface MigrateResult {
  /** Names applied by this call, in order (each committed with its own txid). */
  applied: string[];
  /** Migrations of the list that the shard had applied before. */
  alreadyApplied: number;
  /** Set when the shard stopped at a migration. */
  failure?: MigrationFailure;
}

/** sha256 (hex) of the migration's SQL as UTF-8: the identity a shard records for a name. */
export function migrationChecksum(sql: string): string {
  return createHash('sha256').update(sql, 'utf8').digest('hex');
}

/** Apply every migration of `migrations` the shard has not recorded yet, in order; see the file comment. */
export function applyMigrations(h: ShardHandle, migrations: readonly ShardMigration[]): MigrateResult {
  const done = h.guard.trusted(() => readApplied(h));
  const result: MigrateResult = { applied: [], alreadyApplied: 0 };
  for (const m of migrations) {
    const recorded = done.get(m.name);
    if (recorded !== undefined) {
      if (recorded !== m.checksum) {
        result.failure = {
          migration: m.name,
          code: 'SCHEMA_CONFLICT',
          message: `migration "${m.name}" was applied to this tenant with different SQL`,
          details: { reason: 'checksum', appliedChecksum: recorded, checksum: m.checksum },
        };
        break;
      }
      result.alreadyApplied++;
      continue;
    }
    try {
      applyOne(h, m);
    } catch (err) {
      const e = h.guard.classify(err);
      result.failure = { migration: m.name, code: e.code, message: e.message, details: { ...e.details } };
      break;
    }
    result.applied.push(m.name);
  }
  return result;
}

/** Names and checksums recorded in the shard; empty when the table does not exist yet (trusted). */
function readApplied(h: ShardHandle): Map<string, string> {
  if (!reservedTableExists(h, TABLE)) return new Map();
  const rows = h.db.prepare(`SELECT name, checksum FROM main.${MIGRATIONS_TABLE}`).raw(true).all() as [string, string][];
  return new Map(rows);
}

function applyOne(h: ShardHandle, m: ShardMigration): void {
  h.guard.trusted(() => h.own.beginImmediate.run());
  try {
    // Untrusted: exec prepares each statement in turn, so the authorizer sees every one of them.
    h.db.exec(m.sql);
    h.guard.trusted(() => {
      if (!h.db.inTransaction) {
        throw new DomicileError('SQL_ERROR', `migration "${m.name}" ended its own transaction`, { sqliteCode: 'SQLITE_ERROR' });
      }
      // The table is created inside the first migration's transaction: no write transaction of its own.
      ensureReservedTable(h, TABLE);
      h.db.prepare(`INSERT INTO main.${MIGRATIONS_TABLE} (name, checksum, applied_at, txid)
        VALUES (?, ?, ?, (SELECT txid + 1 FROM main._domicile_meta WHERE id = 1))`).run(m.name, m.checksum, new Date().toISOString());
      h.own.bumpTxid.run();
      h.own.commit.run();
    });
  } catch (err) {
    // Classify first: the guard keeps the denial reason only until the next statement starts (the ROLLBACK).
    const e = h.guard.classify(err);
    if (h.db.inTransaction) {
      try {
        h.guard.trusted(() => h.own.rollback.run());
      } catch {
        // SQLite rolls back on the next statement or on close; the migration's error matters.
      }
    }
    throw e;
  }
}
