/**
 * Idempotency keys on a shard (DESIGN §5, §7; docs/shards.md "Idempotency
 * keys"). Runs on a worker. In order, for a `/query` or `/batch` with a key:
 *
 * 1. Fingerprint the request: sha256 of its kind and statements as canonical
 *    JSON (object keys sorted), so a retry matches whatever its key order.
 * 2. Look the key up (trusted read). A live record with the same fingerprint
 *    is the answer (`replayed`); with another fingerprint the request is
 *    refused with IDEMPOTENCY_KEY_REUSED. Records older than the TTL count as
 *    absent, pruned or not.
 * 3. Otherwise run the request; when it wrote, the record (key, fingerprint,
 *    the exact result, time, txid) is inserted inside its transaction, right
 *    before the txid bump and COMMIT, so record and effect commit or vanish
 *    together. A failed request leaves no record, so its retry runs again.
 *    Read-only requests record nothing: running them again has no effect.
 *
 * The per-tenant queue runs one message of a tenant at a time, so a retry
 * sent while the first attempt runs is looked up after it committed. Inside a
 * group commit (group-commit.ts) the lookup and the record run in the
 * member's savepoint: a retry in the same group finds the first attempt's
 * record and is answered only once that record committed (or replayed).
 */
import { createHash } from 'node:crypto';
import type { Statement as SqliteStatement } from 'better-sqlite3';
import { DomicileError } from '@domicile/errors';
import { executeBatch, executeOne, type ExecLimits } from './execute.ts';
import { IDEMPOTENCY_KEY_HEADER } from './idempotency-key.ts';
import type { ShardHandle } from './open-shard.ts';
import { ensureReservedTable, reservedTableExists, type ReservedTable } from './reserved-table.ts';
import type { ExecOptions, ExecOutcome, Statement, StatementResult } from './types.ts';

/** Name of the reserved table holding a shard's idempotency records. */
export const IDEMPOTENCY_TABLE = '_domicile_idempotency';

/** Expired records deleted per recorded write: more than the one it adds, so a backlog drains, and bounded. */
export const PRUNE_BATCH = 16;

const TABLE: ReservedTable = Object.freeze({
  name: IDEMPOTENCY_TABLE,
  // Compared byte for byte with sqlite_schema (reserved-table.ts): keep the text stable.
  ddl: `CREATE TABLE ${IDEMPOTENCY_TABLE} (
  key TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  response TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  txid INTEGER NOT NULL
) STRICT, WITHOUT ROWID`,
  extras: [`CREATE INDEX main.${IDEMPOTENCY_TABLE}_created_at ON ${IDEMPOTENCY_TABLE} (created_at)`],
});

/** The request kinds a key can be recorded for; part of the fingerprint, so a `/query` key never answers a `/batch`. */
export type IdempotentKind = 'query' | 'batch';

/** A recorded outcome. */
interface IdempotencyRecord {
  fingerprint: string;
  response: string;
  txid: number;
}

/** Per-handle statements, prepared once the table is known to be Domicile's and committed. */
interface Store {
  find: SqliteStatement;
  prune: SqliteStatement;
  insert: SqliteStatement;
}

const stores = new WeakMap<ShardHandle, Store>();

function prepareStore(h: ShardHandle): Store {
  return h.guard.trusted(() => ({
    find: h.db.prepare(`SELECT fingerprint, response, txid FROM main.${IDEMPOTENCY_TABLE} WHERE key = ? AND created_at > ?`),
    prune: h.db.prepare(`DELETE FROM main.${IDEMPOTENCY_TABLE} WHERE key IN
      (SELECT key FROM main.${IDEMPOTENCY_TABLE} WHERE created_at <= ? ORDER BY created_at LIMIT ${PRUNE_BATCH})`),
    // OR REPLACE: only an expired record of the same key can be there (a live one is answered in step 2).
    insert: h.db.prepare(`INSERT OR REPLACE INTO main.${IDEMPOTENCY_TABLE} (key, fingerprint, response, created_at, txid)
      VALUES (?, ?, ?, ?, (SELECT txid + 1 FROM main._domicile_meta WHERE id = 1))`),
  }));
}

/**
 * The store of a handle whose table exists, or undefined. Only a committed
 * table is cached (lookups of a single request run outside transactions): a
 * table created by a write that then rolled back must not leave statements on
 * a missing table. Inside a transaction (a group commit, group-commit.ts) the
 * table may be an uncommitted neighbour's, so the statements are not cached.
 */
function committedStore(h: ShardHandle): Store | undefined {
  let store = stores.get(h);
  if (!store && reservedTableExists(h, TABLE)) {
    store = prepareStore(h);
    if (!h.db.inTransaction) stores.set(h, store);
  }
  return store;
}

/** Canonical JSON: object keys sorted, arrays in order, undefined members left out (as JSON.stringify does). */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const members = Object.keys(obj).sort().filter((k) => obj[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`);
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** sha256 (hex) of the request's kind and statements as canonical JSON. */
export function requestFingerprint(kind: IdempotentKind, statements: readonly Statement[]): string {
  return createHash('sha256').update(canonicalJson({ kind, statements }), 'utf8').digest('hex');
}

/** What a lookup found: the answer of an earlier request with the key, or the fingerprint to record this one under. */
export type IdempotencyLookup =
  | { replay: ExecOutcome<StatementResult | StatementResult[]>; fingerprint: string }
  | { replay: undefined; fingerprint: string };

/**
 * Steps 1 and 2 of the file comment: fingerprint the request and look its key
 * up. IDEMPOTENCY_KEY_REUSED when a live record has another fingerprint.
 */
export function lookupIdempotent(h: ShardHandle, kind: IdempotentKind, statements: readonly Statement[], key: string, ttlMs: number, now: number): IdempotencyLookup {
  const fingerprint = requestFingerprint(kind, statements);
  const found = committedStore(h);
  const record = found && (h.guard.trusted(() => found.find.get(key, now - ttlMs)) as IdempotencyRecord | undefined);
  if (!record) return { replay: undefined, fingerprint };
  if (record.fingerprint !== fingerprint) {
    throw new DomicileError(
      'IDEMPOTENCY_KEY_REUSED',
      `this ${IDEMPOTENCY_KEY_HEADER} was used for a different request in the last ${Math.round(ttlMs / 1000)} s`,
      { field: IDEMPOTENCY_KEY_HEADER },
    );
  }
  return { replay: { result: JSON.parse(record.response) as StatementResult | StatementResult[], replayed: true, txid: record.txid }, fingerprint };
}

/**
 * Step 3's record: insert it inside the open write transaction, before its
 * txid bump (the record's txid is the one that transaction commits as), and
 * prune a few expired ones.
 */
export function recordIdempotent(h: ShardHandle, key: string, fingerprint: string, result: StatementResult | StatementResult[], ttlMs: number, now: number): void {
  h.guard.trusted(() => {
    // First record of this shard: the table is created in this transaction; cached only once a lookup sees it committed.
    let store = stores.get(h);
    if (!store) {
      ensureReservedTable(h, TABLE);
      store = prepareStore(h);
    }
    store.prune.run(now - ttlMs);
    store.insert.run(key, fingerprint, JSON.stringify(result), now);
  });
}

/** Run a `/query` (one statement) or `/batch` under `opts.idempotencyKey`; see the file comment for the order. */
export function executeIdempotent(
  h: ShardHandle,
  kind: IdempotentKind,
  statements: Statement[],
  opts: ExecOptions & { idempotencyKey: string },
  limits: ExecLimits,
  ttlMs: number,
): ExecOutcome<StatementResult | StatementResult[]> {
  const key = opts.idempotencyKey;
  const now = Date.now();
  const { replay, fingerprint } = lookupIdempotent(h, kind, statements, key, ttlMs, now);
  if (replay) return replay;
  const beforeCommit = (result: StatementResult | StatementResult[]): void => recordIdempotent(h, key, fingerprint, result, ttlMs, now);
  const result = kind === 'query'
    ? executeOne(h, statements[0]!, opts, limits, { beforeCommit })
    : executeBatch(h, statements, opts, limits, { beforeCommit });
  return { result, replayed: false };
}
