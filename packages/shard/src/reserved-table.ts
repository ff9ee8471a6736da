/**
 * Domicile's own tables that are created lazily, after the shard was created
 * (DESIGN §7). The statement guard stops tenant SQL from creating or writing
 * `_domicile_*` objects, but not from renaming a table of its own to such a
 * name (statement-guard.md, "Known gap"), and a renamed table keeps its
 * triggers. Domicile writes its tables in trusted mode, where a tenant trigger
 * would run unguarded. So a lazily created table is used only when its stored
 * SQL is byte for byte Domicile's (a rename stores the new name quoted, so a
 * squatted table never matches) and no trigger of any schema is on it.
 * Callers address the table as `main.<name>`: a temp table renamed to the
 * same name would otherwise shadow it.
 */
import { DomicileError } from '@domicile/errors';
import type { ShardHandle } from './open-shard.ts';

/** A reserved table and what comes with it. */
export interface ReservedTable {
  /** `_domicile_...`, unquoted. */
  name: string;
  /** The exact `CREATE TABLE <name> (...)` text; compared with `sqlite_schema.sql`. */
  ddl: string;
  /** Further statements run right after the table is created (its indexes). */
  extras: readonly string[];
}

/** Whether the table exists in `main` (and is Domicile's); INTERNAL when a table of that name is not Domicile's. Trusted. */
export function reservedTableExists(h: ShardHandle, table: ReservedTable): boolean {
  return h.guard.trusted(() => {
    // Table names are case-insensitive in SQLite: `_DOMICILE_X` would resolve to ours.
    const sql = h.db.prepare("SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE")
      .pluck().get(table.name) as string | undefined;
    if (sql === undefined) return false;
    const triggers = h.db.prepare(`SELECT (SELECT count(*) FROM main.sqlite_schema WHERE type = 'trigger' AND tbl_name = ? COLLATE NOCASE)
      + (SELECT count(*) FROM temp.sqlite_schema WHERE type = 'trigger' AND tbl_name = ? COLLATE NOCASE)`).pluck().get(table.name, table.name) as number;
    if (sql !== table.ddl || triggers > 0) {
      throw new DomicileError('INTERNAL', `reserved table ${table.name} was not created by Domicile`, { table: table.name });
    }
    return true;
  });
}

/**
 * Create the table (and its extras) unless it exists; INTERNAL when a table of
 * that name is not Domicile's. Call inside a write transaction, so that the
 * table commits or vanishes with it. Trusted.
 */
export function ensureReservedTable(h: ShardHandle, table: ReservedTable): void {
  if (reservedTableExists(h, table)) return;
  h.guard.trusted(() => {
    h.db.prepare(table.ddl).run();
    for (const sql of table.extras) h.db.prepare(sql).run();
  });
}
