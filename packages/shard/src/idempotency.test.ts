import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { ShardPool, type ShardPoolOptions } from './shard-pool.ts';
import { shardPath } from './shard-path.ts';
import { canonicalJson, IDEMPOTENCY_TABLE, requestFingerprint } from './idempotency.ts';
import type { ShardRef } from './types.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(opts: Partial<ShardPoolOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'domicile-idem-'));
  const pool = new ShardPool({ workers: 2, maxOpenShards: 16, statementTimeoutMs: 5000, maxResultBytes: 1 << 20, maxDbBytes: 1 << 26, ...opts });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => pool.close());
  await pool.start();
  const ref = (tenant: string): ShardRef => ({ tenant, incarnation: `inc-${tenant}`, path: shardPath(dir, tenant), epoch: 1 });
  const a = ref('acme');
  await pool.create(a);
  await pool.query(a, { sql: 'CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)' });
  const count = async (r = a) => (await pool.query(r, { sql: 'SELECT count(*) FROM t' })).rows[0]![0];
  return { pool, dir, ref, a, count };
}

/** Reads the shard file directly (a second connection on the WAL file), outside the pool. */
function inspect<T>(path: string, fn: (db: Database.Database) => T): T {
  const db = new Database(path, { readonly: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}
const txid = (path: string) => inspect(path, (db) => db.prepare('SELECT txid FROM _domicile_meta').pluck().get() as number);
const keys = (path: string) => inspect(path, (db) => {
  const exists = db.prepare("SELECT 1 FROM sqlite_schema WHERE name = ?").get(IDEMPOTENCY_TABLE);
  return exists ? (db.prepare(`SELECT key FROM ${IDEMPOTENCY_TABLE} ORDER BY key`).pluck().all() as string[]) : [];
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Idempotency-Key in the shard', () => {
  it('runs a /query write once: the retry is answered from the record with the same result', async () => {
    const { pool, a, count } = await setup();
    const stmt = { sql: 'INSERT INTO t (v) VALUES (?) RETURNING id, v', params: ['x'] };
    const first = await pool.queryOutcome(a, stmt, { idempotencyKey: 'k-1' });
    const before = txid(a.path);
    const second = await pool.queryOutcome(a, stmt, { idempotencyKey: 'k-1' });
    expect(first).toEqual({ result: { columns: ['id', 'v'], columnTypes: ['INTEGER', 'TEXT'], rows: [[1, 'x']], rowsAffected: 1, lastInsertRowid: 1 }, replayed: false });
    expect(second.replayed).toBe(true);
    expect(second.result).toEqual(first.result);
    expect(second.txid).toBe(before);
    expect(await count()).toBe(1);
    expect(txid(a.path)).toBe(before);
    // query() hides the envelope but replays all the same.
    expect(await pool.query(a, stmt, { idempotencyKey: 'k-1' })).toEqual(first.result);
    expect(await count()).toBe(1);
  });

  it('runs a keyed write once when the same request arrives twice concurrently', async () => {
    const { pool, a, count } = await setup();
    const stmt = { sql: 'INSERT INTO t (v) VALUES (?)', params: ['x'] };
    const outs = await Promise.all([1, 2, 3].map(() => pool.queryOutcome(a, stmt, { idempotencyKey: 'same' })));
    expect(outs.filter((o) => !o.replayed)).toHaveLength(1);
    expect(outs.map((o) => o.result)).toEqual([outs[0]!.result, outs[0]!.result, outs[0]!.result]);
    expect(await count()).toBe(1);
  });

  it('refuses a key reused for another body, another kind or other parameters with IDEMPOTENCY_KEY_REUSED, running nothing', async () => {
    const { pool, a, count } = await setup();
    await pool.query(a, { sql: 'INSERT INTO t (v) VALUES (:v)', params: { v: 'x' } }, { idempotencyKey: 'k' });
    const reused = { code: 'IDEMPOTENCY_KEY_REUSED', statusCode: 422, details: { field: 'Idempotency-Key' } };
    await expect(pool.query(a, { sql: 'INSERT INTO t (v) VALUES (:v)', params: { v: 'y' } }, { idempotencyKey: 'k' })).rejects.toMatchObject(reused);
    await expect(pool.query(a, { sql: 'DELETE FROM t' }, { idempotencyKey: 'k' })).rejects.toMatchObject(reused);
    await expect(pool.batch(a, [{ sql: 'INSERT INTO t (v) VALUES (:v)', params: { v: 'x' } }], { idempotencyKey: 'k' })).rejects.toMatchObject(reused);
    // A read with the key is refused too: the key names the earlier write.
    await expect(pool.query(a, { sql: 'SELECT 1' }, { idempotencyKey: 'k' })).rejects.toMatchObject(reused);
    expect(await count()).toBe(1);
  });

  it('fingerprints canonical JSON: named parameters in another key order are the same request', async () => {
    expect(canonicalJson({ b: 1, a: [{ d: null, c: 'x' }], u: undefined })).toBe('{"a":[{"c":"x","d":null}],"b":1}');
    expect(requestFingerprint('query', [{ sql: 'x', params: { a: 1, b: 2 } }])).toBe(requestFingerprint('query', [{ params: { b: 2, a: 1 }, sql: 'x' }]));
    expect(requestFingerprint('query', [{ sql: 'x' }])).not.toBe(requestFingerprint('batch', [{ sql: 'x' }]));
    const { pool, a, count } = await setup();
    await pool.query(a, { sql: 'INSERT INTO t (v) VALUES (:a || :b)', params: { a: 'x', b: 'y' } }, { idempotencyKey: 'k' });
    const again = await pool.queryOutcome(a, { sql: 'INSERT INTO t (v) VALUES (:a || :b)', params: { b: 'y', a: 'x' } }, { idempotencyKey: 'k' });
    expect(again.replayed).toBe(true);
    expect(await count()).toBe(1);
  });

  it('records nothing for a failed request, so its retry runs', async () => {
    const { pool, a, count } = await setup();
    await pool.query(a, { sql: 'CREATE TABLE u (id INTEGER PRIMARY KEY)' });
    await pool.query(a, { sql: 'INSERT INTO u VALUES (1)' });
    const stmt = { sql: 'INSERT INTO u VALUES (1)' };
    await expect(pool.query(a, stmt, { idempotencyKey: 'k' })).rejects.toMatchObject({ code: 'SQL_ERROR' });
    expect(keys(a.path)).toEqual([]);
    await pool.query(a, { sql: 'DELETE FROM u' });
    expect(await pool.queryOutcome(a, stmt, { idempotencyKey: 'k' })).toMatchObject({ replayed: false, result: { rowsAffected: 1 } });
    expect(keys(a.path)).toEqual(['k']);
    expect(await count()).toBe(0);
  });

  it('commits the record with the batch: a batch failing at statement 2 leaves neither its rows nor its key', async () => {
    const { pool, a, count } = await setup();
    await pool.query(a, { sql: 'CREATE TABLE u (id INTEGER PRIMARY KEY)' });
    await pool.query(a, { sql: 'INSERT INTO u VALUES (7)' });
    const stmts = [{ sql: "INSERT INTO t (v) VALUES ('a')" }, { sql: 'INSERT INTO u VALUES (7)' }, { sql: 'SELECT count(*) AS n FROM t' }];
    const before = txid(a.path);
    await expect(pool.batch(a, stmts, { idempotencyKey: 'b-1' })).rejects.toMatchObject({ code: 'SQL_ERROR', details: { statementIndex: 1 } });
    expect(keys(a.path)).toEqual([]);
    expect(txid(a.path)).toBe(before);
    expect(await count()).toBe(0);
    await pool.query(a, { sql: 'DELETE FROM u' });
    const first = await pool.batchOutcome(a, stmts, { idempotencyKey: 'b-1' });
    expect(first.replayed).toBe(false);
    expect(first.result).toHaveLength(3);
    expect(first.result[2]).toMatchObject({ columns: ['n'], rows: [[1]] });
    const second = await pool.batchOutcome(a, stmts, { idempotencyKey: 'b-1' });
    expect(second).toEqual({ result: first.result, replayed: true, txid: txid(a.path) });
    expect(await count()).toBe(1);
    expect(keys(a.path)).toEqual(['b-1']);
  });

  it('records nothing for read-only requests and answers them by running them', async () => {
    const { pool, a } = await setup();
    const read = { sql: 'SELECT count(*) FROM t' };
    expect(await pool.queryOutcome(a, read, { idempotencyKey: 'r' })).toMatchObject({ replayed: false, result: { rows: [[0]] } });
    expect(await pool.batchOutcome(a, [read], { idempotencyKey: 'r2', readOnly: true })).toMatchObject({ replayed: false });
    await pool.query(a, { sql: "INSERT INTO t (v) VALUES ('x')" });
    expect(await pool.queryOutcome(a, read, { idempotencyKey: 'r' })).toMatchObject({ replayed: false, result: { rows: [[1]] } });
    expect(keys(a.path)).toEqual([]);
  });

  it('records an autocommit-only PRAGMA write in the transaction of its txid bump', async () => {
    const { pool, a } = await setup();
    const before = txid(a.path);
    const stmt = { sql: 'PRAGMA user_version = 7' };
    expect(await pool.queryOutcome(a, stmt, { idempotencyKey: 'p' })).toMatchObject({ replayed: false });
    expect(await pool.queryOutcome(a, stmt, { idempotencyKey: 'p' })).toMatchObject({ replayed: true, txid: before + 1 });
    expect(txid(a.path)).toBe(before + 1);
    expect(inspect(a.path, (db) => db.pragma('user_version', { simple: true }))).toBe(7);
  });

  it('forgets a key after the TTL and prunes expired records on later keyed writes', async () => {
    const { pool, a, count } = await setup({ idempotencyTtlMs: 1000 });
    const stmt = { sql: "INSERT INTO t (v) VALUES ('x')" };
    await pool.query(a, stmt, { idempotencyKey: 'k1' });
    await pool.query(a, { sql: "INSERT INTO t (v) VALUES ('y')" }, { idempotencyKey: 'k2' });
    expect(await pool.queryOutcome(a, stmt, { idempotencyKey: 'k1' })).toMatchObject({ replayed: true });
    await sleep(1100);
    // Expired: the same key runs again (and replaces its own record), and k2's record is pruned.
    expect(await pool.queryOutcome(a, stmt, { idempotencyKey: 'k1' })).toMatchObject({ replayed: false });
    expect(await count()).toBe(3);
    expect(keys(a.path)).toEqual(['k1']);
    // A body that would have been refused under the live key is a new request once it expired.
    await sleep(1100);
    expect(await pool.queryOutcome(a, { sql: 'DELETE FROM t' }, { idempotencyKey: 'k1' })).toMatchObject({ replayed: false, result: { rowsAffected: 3 } });
  });

  it('keeps keys per tenant: the same key on two tenants is two keys', async () => {
    const { pool, a, ref, count } = await setup();
    const b = ref('bravo');
    await pool.create(b);
    await pool.query(b, { sql: 'CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)' });
    const stmt = { sql: "INSERT INTO t (v) VALUES ('x')" };
    expect(await pool.queryOutcome(a, stmt, { idempotencyKey: 'shared' })).toMatchObject({ replayed: false });
    expect(await pool.queryOutcome(b, stmt, { idempotencyKey: 'shared' })).toMatchObject({ replayed: false });
    expect([await count(a), await count(b)]).toEqual([1, 1]);
  });

  it('refuses malformed keys with BAD_REQUEST naming the header', async () => {
    const { pool, a, count } = await setup();
    for (const key of ['', 'has space', 'x'.repeat(256), 'caf\u00e9', 'tab\there', 'nl\n']) {
      await expect(pool.query(a, { sql: "INSERT INTO t (v) VALUES ('x')" }, { idempotencyKey: key }))
        .rejects.toMatchObject({ code: 'BAD_REQUEST', details: { field: 'Idempotency-Key' } });
    }
    expect(await pool.queryOutcome(a, { sql: "INSERT INTO t (v) VALUES ('x')" }, { idempotencyKey: '!~'.repeat(127) + 'x' })).toMatchObject({ replayed: false });
    expect(await count()).toBe(1);
  });

  it('refuses a tenant table renamed to the reserved name (its trigger would run trusted) and runs nothing', async () => {
    const { pool, a, count } = await setup();
    await pool.query(a, { sql: 'CREATE TABLE squat (key TEXT PRIMARY KEY, fingerprint TEXT, response TEXT, created_at INTEGER, txid INTEGER) WITHOUT ROWID' });
    await pool.query(a, { sql: 'CREATE TRIGGER grab AFTER INSERT ON squat BEGIN UPDATE _domicile_meta SET epoch = 999; END' });
    // statement-guard.md "Known gap": a rename to a reserved name is not caught by the guard.
    await pool.query(a, { sql: 'ALTER TABLE squat RENAME TO _DOMICILE_IDEMPOTENCY' });
    await expect(pool.query(a, { sql: "INSERT INTO t (v) VALUES ('x')" }, { idempotencyKey: 'k' })).rejects.toMatchObject({ code: 'INTERNAL' });
    expect(await count()).toBe(0);
    expect(inspect(a.path, (db) => db.prepare('SELECT epoch FROM _domicile_meta').pluck().get())).toBe(1);
    // Requests without a key are unaffected.
    await pool.query(a, { sql: "INSERT INTO t (v) VALUES ('x')" });
    expect(await count()).toBe(1);
  });

  it('creates the reserved table with the first recorded write, and tenant SQL cannot write it', async () => {
    const { pool, a } = await setup();
    await pool.query(a, { sql: "INSERT INTO t (v) VALUES ('x')" }, { idempotencyKey: 'k' });
    await expect(pool.query(a, { sql: `DELETE FROM ${IDEMPOTENCY_TABLE}` })).rejects.toMatchObject({ code: 'STATEMENT_NOT_ALLOWED' });
    await expect(pool.query(a, { sql: `DROP TABLE ${IDEMPOTENCY_TABLE}` })).rejects.toMatchObject({ code: 'STATEMENT_NOT_ALLOWED' });
    await expect(pool.query(a, { sql: `CREATE TRIGGER x AFTER INSERT ON ${IDEMPOTENCY_TABLE} BEGIN SELECT 1; END` })).rejects.toMatchObject({ code: 'STATEMENT_NOT_ALLOWED' });
    expect(keys(a.path)).toEqual(['k']);
  });
});
