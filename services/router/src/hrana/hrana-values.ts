/**
 * Hrana's JSON encoding of values and results (Hrana over HTTP v2), mapped to
 * and from Domicile's wire values (DESIGN §5). Integers travel as decimal
 * strings, blobs as base64.
 */
import { DomicileError } from '@domicile/errors';
import type { ParamValue, Params, StatementResult, WireValue } from '@domicile/shard';

/** A Hrana value. */
export type HranaValue =
  | { type: 'null' }
  | { type: 'integer'; value: string }
  | { type: 'float'; value: number }
  | { type: 'text'; value: string }
  | { type: 'blob'; base64: string };

/** A Hrana statement as a client sends it. */
export interface HranaStmt {
  sql?: string;
  sql_id?: number;
  args?: unknown[];
  named_args?: { name: string; value: unknown }[];
  want_rows?: boolean;
}

/** A Hrana statement result. */
export interface HranaStmtResult {
  cols: { name: string; decltype: string | null }[];
  rows: HranaValue[][];
  affected_row_count: number;
  last_insert_rowid: string | null;
}

/** Hrana value → a parameter the shard layer binds. A whole `float` binds as INTEGER, as on `/query`. */
export function fromHranaValue(v: unknown, name: string): ParamValue {
  const bad = (why: string) => new DomicileError('BAD_REQUEST', `argument ${name} ${why}`, { parameter: name });
  if (!v || typeof v !== 'object') throw bad('must be a Hrana value object');
  const o = v as Record<string, unknown>;
  switch (o.type) {
    case 'null':
      return null;
    case 'integer':
      if (typeof o.value !== 'string' && typeof o.value !== 'number') throw bad('needs an integer value');
      return { int: String(o.value) };
    case 'float':
      if (typeof o.value !== 'number' || !Number.isFinite(o.value)) throw bad('needs a finite number');
      return o.value;
    case 'text':
      if (typeof o.value !== 'string') throw bad('needs a string value');
      return o.value;
    case 'blob':
      if (typeof o.base64 !== 'string') throw bad('needs base64');
      // Accept unpadded or URL-safe base64; the shard layer wants standard padded.
      return { base64: Buffer.from(o.base64, 'base64').toString('base64') };
    default:
      throw bad('has an unknown type');
  }
}

/** Positional or named Hrana arguments → shard parameters. Names lose their `:`, `@` or `$` prefix. */
export function fromHranaArgs(stmt: HranaStmt): Params | undefined {
  const args = stmt.args ?? [];
  const named = stmt.named_args ?? [];
  if (!Array.isArray(args) || !Array.isArray(named)) throw new DomicileError('BAD_REQUEST', 'args and named_args must be arrays');
  if (args.length > 0 && named.length > 0) {
    throw new DomicileError('BAD_REQUEST', 'a statement takes positional or named arguments, not both');
  }
  if (named.length > 0) {
    const out: Record<string, ParamValue> = {};
    for (const a of named) {
      if (!a || typeof a.name !== 'string' || a.name === '') throw new DomicileError('BAD_REQUEST', 'named_args entries need a name');
      const key = /^[:@$]/.test(a.name) ? a.name.slice(1) : a.name;
      out[key] = fromHranaValue(a.value, a.name);
    }
    return out;
  }
  if (args.length > 0) return args.map((v, i) => fromHranaValue(v, String(i + 1)));
  return undefined;
}

/** Shard wire value → Hrana value. A REAL that holds a whole number reads back as `integer` (the wire form does not keep the difference). */
export function toHranaValue(v: WireValue): HranaValue {
  if (v === null) return { type: 'null' };
  if (typeof v === 'number') return Number.isInteger(v) ? { type: 'integer', value: String(v) } : { type: 'float', value: v };
  if (typeof v === 'string') return { type: 'text', value: v };
  if ('int' in v) return { type: 'integer', value: v.int };
  return { type: 'blob', base64: v.base64 };
}

/** Shard result → Hrana statement result. */
export function toHranaResult(r: StatementResult, wantRows = true): HranaStmtResult {
  const rowid = r.lastInsertRowid;
  return {
    cols: r.columns.map((name, i) => ({ name, decltype: r.columnTypes[i] ?? null })),
    rows: wantRows ? r.rows.map((row) => row.map(toHranaValue)) : [],
    affected_row_count: r.rowsAffected,
    last_insert_rowid: rowid === null ? null : typeof rowid === 'object' && 'int' in rowid ? rowid.int : String(rowid),
  };
}
