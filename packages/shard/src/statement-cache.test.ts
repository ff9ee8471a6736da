import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isDomicileError } from '@domicile/errors';
import { STATEMENT_CACHE_MAX_SQL, STATEMENT_CACHE_SIZE, cachedStatementCount, executeBatch, executeOne } from './execute.ts';
import { createShard, type ShardHandle } from './open-shard.ts';
import { poolWithOneTenant } from './test-pool.ts';
import { shardPath } from './shard-path.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const LIMITS = { maxResultBytes: 1 << 20 };

function handle(): ShardHandle {
  const dir = mkdtempSync(join(tmpdir(), 'domicile-stmt-cache-'));
  const h = createShard({ tenant: 'acme', incarnation: 'inc', path: shardPath(dir, 'acme'), epoch: 1 }, { statementTimeoutMs: 5000, maxDbBytes: 1 << 26, group: 0 });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => { h.db.close(); });
  return h;
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return isDomicileError(err) ? err.code : `not a DomicileError: ${String(err)}`;
  }
  return 'no error';
}

describe('per-handle statement cache', () => {
  it('reuses one prepared statement per SQL text, and every run sees its own parameters', () => {
    const h = handle();
    executeOne(h, { sql: 'CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)' }, {}, LIMITS);
    const before = cachedStatementCount(h);
    for (let i = 0; i < 5; i++) executeOne(h, { sql: 'INSERT INTO t (v) VALUES (?)', params: [`v${i}`] }, {}, LIMITS);
    expect(cachedStatementCount(h)).toBe(before + 1);
    const rows = executeOne(h, { sql: 'SELECT v FROM t ORDER BY id' }, {}, LIMITS).rows;
    expect(rows).toEqual([['v0'], ['v1'], ['v2'], ['v3'], ['v4']]);
    // A batch shares the cache; the same statement twice in one batch runs twice.
    executeBatch(h, [{ sql: 'INSERT INTO t (v) VALUES (?)', params: ['b1'] }, { sql: 'INSERT INTO t (v) VALUES (?)', params: ['b2'] }], {}, LIMITS);
    expect(executeOne(h, { sql: 'SELECT count(*) FROM t' }, {}, LIMITS).rows).toEqual([[7]]);
  });

  it('follows schema changes: a cached SELECT * sees a new column, a dropped table is an SQL error, re-created it works again', () => {
    const h = handle();
    executeOne(h, { sql: 'CREATE TABLE t (a)' }, {}, LIMITS);
    executeOne(h, { sql: 'INSERT INTO t VALUES (1)' }, {}, LIMITS);
    expect(executeOne(h, { sql: 'SELECT * FROM t' }, {}, LIMITS).columns).toEqual(['a']);
    executeOne(h, { sql: 'ALTER TABLE t ADD COLUMN b' }, {}, LIMITS);
    expect(executeOne(h, { sql: 'SELECT * FROM t' }, {}, LIMITS).columns).toEqual(['a', 'b']);
    executeOne(h, { sql: 'DROP TABLE t' }, {}, LIMITS);
    expect(code(() => executeOne(h, { sql: 'SELECT * FROM t' }, {}, LIMITS))).toBe('SQL_ERROR');
    executeOne(h, { sql: 'CREATE TABLE t (c)' }, {}, LIMITS);
    expect(executeOne(h, { sql: 'SELECT * FROM t' }, {}, LIMITS).columns).toEqual(['c']);
  });

  it('never caches a denial: refused statements stay refused and take no slot', () => {
    const h = handle();
    const before = cachedStatementCount(h);
    for (let i = 0; i < 2; i++) {
      expect(code(() => executeOne(h, { sql: "ATTACH 'x.db' AS x" }, {}, LIMITS))).toBe('STATEMENT_NOT_ALLOWED');
      expect(code(() => executeOne(h, { sql: 'BEGIN' }, {}, LIMITS))).toBe('STATEMENT_NOT_ALLOWED');
    }
    expect(cachedStatementCount(h)).toBe(before);
  });

  it('keeps at most STATEMENT_CACHE_SIZE statements, most recently used, and skips very long SQL', () => {
    const h = handle();
    for (let i = 0; i < STATEMENT_CACHE_SIZE + 10; i++) executeOne(h, { sql: `SELECT ${i}` }, {}, LIMITS);
    expect(cachedStatementCount(h)).toBe(STATEMENT_CACHE_SIZE);
    const long = `SELECT 1 /* ${'x'.repeat(STATEMENT_CACHE_MAX_SQL)} */`;
    expect(executeOne(h, { sql: long }, {}, LIMITS).rows).toEqual([[1]]);
    expect(cachedStatementCount(h)).toBe(STATEMENT_CACHE_SIZE);
  });

  it('a transaction statement prepared inside a session is not cached: the same text is refused outside it afterwards', async () => {
    const { pool, a } = await poolWithOneTenant('domicile-stmt-cache-', cleanups);
    await pool.query(a, { sql: 'CREATE TABLE t (v)' });
    const s = await pool.openSession(a);
    // Autocommit statements of a session take the /query path (executeOne) with transaction control allowed.
    await pool.sessionExecute(s, { sql: 'BEGIN' });
    await pool.sessionExecute(s, { sql: 'INSERT INTO t VALUES (1)' });
    await pool.sessionExecute(s, { sql: 'COMMIT' });
    await pool.sessionExecute(s, { sql: 'SAVEPOINT x' });
    await pool.sessionExecute(s, { sql: 'RELEASE x' });
    await pool.closeSession(s);
    for (const sql of ['BEGIN', 'COMMIT', 'SAVEPOINT x', 'RELEASE x']) {
      await expect(pool.query(a, { sql }), sql).rejects.toMatchObject({ code: 'STATEMENT_NOT_ALLOWED' });
      await expect(pool.batch(a, [{ sql }]), sql).rejects.toMatchObject({ code: 'STATEMENT_NOT_ALLOWED' });
    }
    expect((await pool.query(a, { sql: 'SELECT count(*) FROM t' })).rows).toEqual([[1]]);
  });
});
