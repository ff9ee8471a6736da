/**
 * The rules of the cluster's migration list (DESIGN §5 "Schema fan-out"),
 * as pure functions every SchemaStore implementation applies:
 * - a name is a number, optionally followed by a separator and a label
 *   (`0001`, `0002_add_invoices`, `20250101120000-init`); numbers strictly
 *   increase along the list, so the list's order is the numeric order of the
 *   files it came from;
 * - the list is append-only: a PUT must repeat the stored list as its prefix,
 *   every stored migration with the same SQL byte for byte, and may only add
 *   migrations after it.
 */
import { DomicileError } from '@domicile/errors';
import { migrationChecksum } from '@domicile/shard';

/** Migration names: 1–15 digits, then optionally `_`, `.` or `-` and a label. */
export const MIGRATION_NAME = /^([0-9]{1,15})(?:[_.-][A-Za-z0-9_.-]{0,100})?$/;

/** Most migrations one list may hold. */
export const MAX_MIGRATIONS = 10_000;

/** A migration as a client sends it. */
export interface MigrationInput {
  name: string;
  sql: string;
}

/** A stored migration. */
export interface StoredMigration {
  name: string;
  sql: string;
  /** sha256 (hex) of `sql` as UTF-8; what every shard records with the name. */
  checksum: string;
  /** RFC 3339: when the cluster first stored it. */
  storedAt: string;
}

/** The numeric part of a valid migration name. */
export function migrationNumber(name: string): number {
  const m = MIGRATION_NAME.exec(name);
  if (!m) throw new DomicileError('BAD_REQUEST', `migration name ${JSON.stringify(name.slice(0, 120))} must match ${MIGRATION_NAME.source}`, { name, reason: 'invalid-name' });
  return Number(m[1]);
}

/**
 * Checks a list on its own: names valid and unique, numbers strictly
 * increasing, SQL not blank. Throws BAD_REQUEST naming the migration and the
 * reason (`invalid-name`, `order`, `empty`, `too-many`).
 */
export function checkMigrationList(list: readonly MigrationInput[]): void {
  if (list.length > MAX_MIGRATIONS) {
    throw new DomicileError('BAD_REQUEST', `at most ${MAX_MIGRATIONS} migrations`, { reason: 'too-many' });
  }
  let previous: { name: string; n: number } | undefined;
  for (const m of list) {
    const n = migrationNumber(m.name);
    if (previous && n <= previous.n) {
      throw new DomicileError('BAD_REQUEST', `migration "${m.name}" must come before "${previous.name}": numbers must strictly increase along the list`, { name: m.name, reason: 'order' });
    }
    if (m.sql.trim() === '') throw new DomicileError('BAD_REQUEST', `migration "${m.name}" has no SQL`, { name: m.name, reason: 'empty' });
    previous = { name: m.name, n };
  }
}

/**
 * What storing `incoming` over `stored` appends. SCHEMA_CONFLICT when it would
 * change history: a stored migration missing from the list (`missing`), in
 * another place (`order`) or with other SQL (`changed`). Call
 * `checkMigrationList(incoming)` first.
 */
export function planAppend(stored: readonly StoredMigration[], incoming: readonly MigrationInput[]): MigrationInput[] {
  for (let i = 0; i < stored.length; i++) {
    const s = stored[i]!;
    const m = incoming[i];
    if (m === undefined || m.name !== s.name) {
      const moved = incoming.some((x) => x.name === s.name);
      throw new DomicileError('SCHEMA_CONFLICT', moved
        ? `stored migration "${s.name}" must stay at position ${i + 1}; new migrations may only be appended`
        : `stored migration "${s.name}" is missing; the list is append-only, every stored migration must be sent again`,
      { name: s.name, reason: moved ? 'order' : 'missing' });
    }
    if (m.sql !== s.sql) {
      throw new DomicileError('SCHEMA_CONFLICT', `stored migration "${s.name}" must keep its SQL byte for byte; add a new migration instead`,
        { name: s.name, reason: 'changed', checksum: s.checksum, sentChecksum: migrationChecksum(m.sql) });
    }
  }
  return incoming.slice(stored.length).map((m) => ({ name: m.name, sql: m.sql }));
}
