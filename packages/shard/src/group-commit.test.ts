import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { ShardPool, type ShardPoolOptions } from './shard-pool.ts';
import { shardPath } from './shard-path.ts';
import type { ShardRef } from './types.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(opts: Partial<ShardPoolOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'domicile-group-'));
  const pool = new ShardPool({ workers: 2, maxOpenShards: 16, statementTimeoutMs: 5000, maxResultBytes: 1 << 20, maxDbBytes: 1 << 26, ...opts });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => pool.close());
  await pool.start();
  const a: ShardRef = { tenant: 'acme', incarnation: 'inc-acme', path: shardPath(dir, 'acme'), epoch: 1 };
  await pool.create(a);
  return { pool, a };
}

function readAll<T>(path: string, sql: string): T[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

const txid = (path: string) => readAll<{ txid: number }>(path, 'SELECT txid FROM _domicile_meta')[0]!.txid;

/** Settle every promise, keeping values and errors in order. */
function settle(ps: Promise<unknown>[]): Promise<({ ok: true; value: any } | { ok: false; error: any })[]> {
  return Promise.all(ps.map((p) => p.then((value) => ({ ok: true as const, value }), (error) => ({ ok: false as const, error }))));
}

describe('group commit', () => {
  it('commits concurrent writes of one tenant as one transaction (one txid) and answers each', async () => {
    const { pool, a } = await setup();
    await pool.query(a, { sql: 'CREATE TABLE t (x TEXT)' });
    const before = txid(a.path);
    const groupsBefore = pool.groupStats().groups;
    // Issued in one event-loop turn: the scheduler hands them to one worker together.
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => pool.query(a, { sql: 'INSERT INTO t VALUES (?)', params: [`v${i}`] })));
    expect(answers.map((r) => r.rowsAffected)).toEqual(Array(10).fill(1));
    expect(answers.map((r) => r.lastInsertRowid)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(pool.groupStats().groups).toBe(groupsBefore + 1);
    expect(txid(a.path)).toBe(before + 1);
    expect(readAll<{ x: string }>(a.path, 'SELECT x FROM t ORDER BY rowid').map((r) => r.x)).toEqual(Array.from({ length: 10 }, (_, i) => `v${i}`));
  });

  it('a failing request leaves its neighbours committed and acknowledged', async () => {
    const { pool, a } = await setup();
    await pool.query(a, { sql: 'CREATE TABLE t (x TEXT UNIQUE)' });
    await pool.query(a, { sql: "INSERT INTO t VALUES ('taken')" });
    const groupsBefore = pool.groupStats().groups;
    const out = await settle([
      pool.query(a, { sql: "INSERT INTO t VALUES ('a')" }),
      pool.batch(a, [{ sql: "INSERT INTO t VALUES ('b1')" }, { sql: "INSERT INTO t VALUES ('taken')" }]),
      pool.query(a, { sql: "INSERT INTO t VALUES ('c')" }),
      pool.query(a, { sql: 'INSERT INTO nope VALUES (1)' }),
      pool.query(a, { sql: "INSERT INTO t VALUES ('d')" }),
    ]);
    expect(out.map((o) => o.ok)).toEqual([true, false, true, false, true]);
    expect(out[1]).toMatchObject({ error: { code: 'SQL_ERROR', details: { sqliteCode: 'SQLITE_CONSTRAINT_UNIQUE', statementIndex: 1 } } });
    expect(out[3]).toMatchObject({ error: { code: 'SQL_ERROR' } });
    expect(pool.groupStats().groups).toBe(groupsBefore + 1);
    // The failed batch's first statement vanished with it (its savepoint), nothing else did.
    expect(readAll<{ x: string }>(a.path, 'SELECT x FROM t ORDER BY rowid').map((r) => r.x)).toEqual(['taken', 'a', 'c', 'd']);
  });

  it('a RAISE(ROLLBACK) that ends the whole transaction still commits every other request exactly once, in order', async () => {
    const { pool, a } = await setup();
    await pool.batch(a, [
      { sql: 'CREATE TABLE t (x TEXT)' },
      { sql: "CREATE TRIGGER no_boom BEFORE INSERT ON t WHEN NEW.x = 'boom' BEGIN SELECT RAISE(ROLLBACK, 'boom refused'); END" },
    ]);
    const before = txid(a.path);
    const { replayed: replayedBefore } = pool.groupStats();
    const out = await settle([
      pool.query(a, { sql: "INSERT INTO t VALUES ('one')" }),
      pool.query(a, { sql: 'SELECT count(*) AS n FROM t' }),
      pool.query(a, { sql: "INSERT INTO t VALUES ('two')" }),
      pool.query(a, { sql: "INSERT INTO t VALUES ('boom')" }),
      pool.query(a, { sql: "INSERT INTO t VALUES ('three')" }),
      pool.query(a, { sql: "INSERT INTO t VALUES ('four')" }),
    ]);
    expect(out.map((o) => o.ok)).toEqual([true, true, true, false, true, true]);
    expect(out[3]).toMatchObject({ error: { code: 'SQL_ERROR', message: expect.stringContaining('boom refused') } });
    // The read ran again after 'one' was replayed and committed: it never reports a write that was rolled back.
    expect(out[1]).toMatchObject({ ok: true, value: { rows: [[1]] } });
    expect(pool.groupStats().replayed - replayedBefore).toBe(3);
    expect(readAll<{ x: string }>(a.path, 'SELECT x FROM t ORDER BY rowid').map((r) => r.x)).toEqual(['one', 'two', 'three', 'four']);
    // 'one', the read and 'two' alone (the read writes nothing), then 'three'+'four' as a group.
    expect(txid(a.path)).toBe(before + 3);
  });

  it('INSERT OR ROLLBACK in one request does not lose or repeat its neighbours', async () => {
    const { pool, a } = await setup();
    await pool.query(a, { sql: 'CREATE TABLE t (x TEXT PRIMARY KEY)' });
    await pool.query(a, { sql: "INSERT INTO t VALUES ('dup')" });
    const out = await settle([
      pool.query(a, { sql: "INSERT INTO t VALUES ('a')" }),
      pool.query(a, { sql: "INSERT OR ROLLBACK INTO t VALUES ('dup')" }),
      pool.query(a, { sql: "INSERT INTO t VALUES ('b')" }),
    ]);
    expect(out.map((o) => o.ok)).toEqual([true, false, true]);
    expect(out[1]).toMatchObject({ error: { code: 'SQL_ERROR', details: { sqliteCode: 'SQLITE_CONSTRAINT_PRIMARYKEY' } } });
    expect(readAll<{ x: string }>(a.path, 'SELECT x FROM t ORDER BY rowid').map((r) => r.x)).toEqual(['dup', 'a', 'b']);
  });

  it('an interrupted write (statement timeout) rolls back the transaction; its neighbours are replayed and committed', async () => {
    const { pool, a } = await setup({ workers: 1, statementTimeoutMs: 300 });
    await pool.query(a, { sql: 'CREATE TABLE t (x)' });
    const out = await settle([
      pool.query(a, { sql: 'INSERT INTO t VALUES (1)' }),
      pool.query(a, { sql: 'INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT 0 FROM c' }),
      pool.query(a, { sql: 'INSERT INTO t VALUES (2)' }),
    ]);
    expect(out.map((o) => o.ok)).toEqual([true, false, true]);
    expect(out[1]).toMatchObject({ error: { code: 'QUERY_TIMEOUT' } });
    expect(readAll<{ x: number }>(a.path, 'SELECT x FROM t ORDER BY rowid').map((r) => r.x)).toEqual([1, 2]);
  });

  it('keeps per-tenant arrival order across many groups', async () => {
    const { pool, a } = await setup({ maxGroup: 8 });
    await pool.query(a, { sql: 'CREATE TABLE t (seq INTEGER)' });
    const n = 200;
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => (i % 10 === 9
      ? pool.batch(a, [{ sql: 'INSERT INTO t VALUES (?)', params: [i] }]).then((r) => r[0]!)
      : pool.query(a, { sql: 'INSERT INTO t VALUES (?)', params: [i] }))));
    expect(answers.map((r) => r.lastInsertRowid)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(readAll<{ seq: number }>(a.path, 'SELECT seq FROM t ORDER BY rowid').map((r) => r.seq)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(pool.groupStats().groups).toBeGreaterThanOrEqual(n / 8);
  });

  it('runs a statement that needs autocommit (PRAGMA) between two groups', async () => {
    const { pool, a } = await setup();
    await pool.query(a, { sql: 'CREATE TABLE t (x)' });
    const out = await settle([
      pool.query(a, { sql: 'INSERT INTO t VALUES (1)' }),
      pool.query(a, { sql: 'INSERT INTO t VALUES (2)' }),
      pool.query(a, { sql: 'PRAGMA user_version = 7' }),
      pool.query(a, { sql: 'INSERT INTO t VALUES (3)' }),
    ]);
    expect(out.every((o) => o.ok)).toBe(true);
    expect(readAll<{ user_version: number }>(a.path, 'PRAGMA user_version')[0]!.user_version).toBe(7);
    expect(readAll<{ x: number }>(a.path, 'SELECT x FROM t ORDER BY rowid').map((r) => r.x)).toEqual([1, 2, 3]);
  });

  it('keeps idempotency keys at most once inside a group, including across a replay', async () => {
    const { pool, a } = await setup();
    await pool.batch(a, [
      { sql: 'CREATE TABLE t (x TEXT)' },
      { sql: "CREATE TRIGGER no_boom BEFORE INSERT ON t WHEN NEW.x = 'boom' BEGIN SELECT RAISE(ROLLBACK, 'boom refused'); END" },
    ]);
    const ins = (x: string) => ({ sql: 'INSERT INTO t VALUES (?)', params: [x] });
    const out = await settle([
      pool.queryOutcome(a, ins('k1'), { idempotencyKey: 'key-1' }),
      pool.queryOutcome(a, ins('k1'), { idempotencyKey: 'key-1' }),
      pool.queryOutcome(a, ins('other'), { idempotencyKey: 'key-1' }),
      pool.queryOutcome(a, ins('boom'), { idempotencyKey: 'key-2' }),
      pool.queryOutcome(a, ins('k2'), { idempotencyKey: 'key-2' }),
      pool.batchOutcome(a, [ins('k3')], { idempotencyKey: 'key-3' }),
      pool.batchOutcome(a, [ins('k3')], { idempotencyKey: 'key-3' }),
    ]);
    expect(out.map((o) => o.ok)).toEqual([true, true, false, false, true, true, true]);
    expect(out[0]).toMatchObject({ value: { replayed: false, result: { rowsAffected: 1 } } });
    expect(out[1]).toMatchObject({ value: { replayed: true, result: { rowsAffected: 1 }, txid: expect.any(Number) } });
    expect((out[1] as { value: { result: unknown } }).value.result).toEqual((out[0] as { value: { result: unknown } }).value.result);
    expect(out[2]).toMatchObject({ error: { code: 'IDEMPOTENCY_KEY_REUSED' } });
    // The failed attempt recorded nothing: the next request under the key (another request) ran.
    expect(out[3]).toMatchObject({ error: { code: 'SQL_ERROR' } });
    expect(out[4]).toMatchObject({ value: { replayed: false } });
    expect(out[5]).toMatchObject({ value: { replayed: false } });
    expect(out[6]).toMatchObject({ value: { replayed: true } });
    expect(readAll<{ x: string }>(a.path, 'SELECT x FROM t ORDER BY rowid').map((r) => r.x)).toEqual(['k1', 'k2', 'k3']);
    expect(readAll<{ key: string }>(a.path, 'SELECT key FROM _domicile_idempotency ORDER BY key').map((r) => r.key)).toEqual(['key-1', 'key-2', 'key-3']);
    // A later retry is answered from the committed record.
    await expect(pool.queryOutcome(a, ins('k1'), { idempotencyKey: 'key-1' })).resolves.toMatchObject({ replayed: true });
  });

  it('with grouping off (maxGroup 1) each request is its own transaction', async () => {
    const { pool, a } = await setup({ maxGroup: 1 });
    await pool.query(a, { sql: 'CREATE TABLE t (x)' });
    const before = txid(a.path);
    await Promise.all(Array.from({ length: 5 }, (_, i) => pool.query(a, { sql: 'INSERT INTO t VALUES (?)', params: [i] })));
    expect(txid(a.path)).toBe(before + 5);
    expect(pool.groupStats().groups).toBe(0);
  });
});

describe('backpressure', () => {
  it('answers OVERLOADED once maxQueue requests wait, and serves again after the queue drains', async () => {
    const { pool, a } = await setup({ maxQueue: 5 });
    await pool.query(a, { sql: 'CREATE TABLE t (x)' });
    const out = await settle(Array.from({ length: 8 }, (_, i) => pool.query(a, { sql: 'INSERT INTO t VALUES (?)', params: [i] })));
    expect(out.map((o) => o.ok)).toEqual([true, true, true, true, true, false, false, false]);
    expect(out[5]).toMatchObject({ error: { code: 'OVERLOADED', statusCode: 503, retryAfterSeconds: expect.any(Number) } });
    expect(pool.stats().queued).toBe(0);
    await expect(pool.query(a, { sql: 'SELECT count(*) FROM t' })).resolves.toMatchObject({ rows: [[5]] });
  });
});
