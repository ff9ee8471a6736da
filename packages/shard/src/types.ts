/**
 * The contract between the router and the shard layer. Values crossing it are
 * already in the wire encoding of DESIGN §5, so they can be posted between
 * threads and written as JSON without another pass.
 */

/** A JSON-safe SQL value: null, number, string, `{int}` for integers beyond ±2^53, `{base64}` for blobs. */
export type WireValue = null | number | string | { int: string } | { base64: string };

/** A parameter as clients may send it: wire values plus booleans (bound as 1/0). */
export type ParamValue = WireValue | boolean;

/** Positional (`?`) or named (`:v`, `@v`, `$v` all bound by key `v`) parameters. */
export type Params = ParamValue[] | Record<string, ParamValue>;

/** One statement with its parameters. */
export interface Statement {
  sql: string;
  params?: Params;
}

/** Result of one statement, the body of `/query` and each item of `/batch`. */
export interface StatementResult {
  columns: string[];
  /** Declared column types; `null` for expressions. */
  columnTypes: (string | null)[];
  rows: WireValue[][];
  rowsAffected: number;
  /** Rowid of the last insert on this connection, in wire encoding. */
  lastInsertRowid: WireValue;
}

/** Where a tenant's shard lives and which incarnation it belongs to. */
export interface ShardRef {
  tenant: string;
  /** Random id fixed at creation: a shard of another incarnation is never served. */
  incarnation: string;
  /** Absolute path of the SQLite file (the caller built it from a validated id). */
  path: string;
  /** Fencing epoch of the current owner. */
  epoch: number;
}

/** What the caller allows this request to do. */
export interface ExecOptions {
  /** A read-scoped token: any statement that would write is refused with FORBIDDEN. */
  readOnly?: boolean;
  /**
   * `Idempotency-Key` of a `/query` or `/batch` (DESIGN §5): 1–255 visible
   * ASCII characters. A write is recorded under it in the shard, in its own
   * transaction; a later request with the key is answered from the record
   * instead of running. Ignored by sessions.
   */
  idempotencyKey?: string;
}

/** A `/query` or `/batch` answer and whether it came from an idempotency record. */
export interface ExecOutcome<T> {
  result: T;
  /** Answered from the record of an earlier request with the same key; nothing ran. */
  replayed: boolean;
  /**
   * Replays only: the txid the recorded write committed as. Sync durability
   * (DESIGN §8) must not acknowledge a replay before this txid is shipped,
   * exactly as for the original write.
   */
  txid?: number;
}

/** Counters for /metrics. */
export interface ShardPoolStats {
  openShards: number;
  evictions: number;
  interrupts: number;
  opens: number;
  queued: number;
  workers: number;
  /** Tenants the scheduler keeps state for (work, a session, or an open handle); bounded by the handle cache. */
  trackedTenants: number;
}
