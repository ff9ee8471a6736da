/**
 * Hrana `describe` (docs/hrana.md): prepare one tenant statement, report its
 * columns and whether it is read-only, and run nothing. The prepare is
 * guarded like any tenant statement (a denied statement is
 * STATEMENT_NOT_ALLOWED), with transaction control allowed: on a Hrana stream
 * `execute` may run BEGIN/COMMIT, and preparing one changes nothing.
 */
import { prepareTenant } from './execute.ts';
import type { ShardHandle } from './open-shard.ts';

/** What a prepare tells about a statement. */
export interface DescribeValue {
  /** Result columns with their declared types (`null` for expressions); empty for a statement that returns no rows. */
  columns: { name: string; decltype: string | null }[];
  /** `sqlite3_stmt_readonly`: running it would not write. */
  readonly: boolean;
}

/** Prepare `sql` on the handle (guarded, transaction control allowed) and describe it; nothing runs. */
export function describeStatement(h: ShardHandle, sql: unknown): DescribeValue {
  h.guard.setTxnControl(true);
  try {
    const prepared = prepareTenant(h, sql);
    const columns = prepared.reader ? prepared.columns().map((c) => ({ name: c.name, decltype: c.type })) : [];
    return { columns, readonly: prepared.readonly };
  } finally {
    // Tenant SQL never has transaction control outside a session statement (worker-sessions.ts resets it too).
    h.guard.setTxnControl(false);
  }
}
