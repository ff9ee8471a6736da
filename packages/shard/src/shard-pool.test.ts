import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { ShardPool, type ShardPoolOptions } from './shard-pool.ts';
import { shardPath, SHARD_FILE_SUFFIXES } from './shard-path.ts';
import type { ShardRef } from './types.ts';

/** Never finishes on its own: only the statement timeout (or the result cap) stops it. */
const RUNAWAY = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c';
/** About 0.7 s of CPU inside SQLite on the reference machine, well under the default test timeout. */
const SLOW = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000) SELECT count(*) FROM c';
/**
 * For tests that await SLOW's answer: it takes 1-2 s here, but once ran past the default 5 s statement timeout
 * in a full suite on a slowed VM (QUERY_TIMEOUT). Room for it, within the 30 s test timeout.
 */
const SLOW_ROOM = { statementTimeoutMs: 25_000 };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(opts: Partial<ShardPoolOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'domicile-shard-'));
  const pool = new ShardPool({ workers: 2, maxOpenShards: 16, statementTimeoutMs: 5000, maxResultBytes: 1 << 20, maxDbBytes: 1 << 26, ...opts });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => pool.close());
  await pool.start();
  const ref = (tenant: string, incarnation = `inc-${tenant}`): ShardRef => ({ tenant, incarnation, path: shardPath(dir, tenant), epoch: 1 });
  return { pool, dir, ref };
}

function readMeta(path: string): { txid: number; epoch: number; incarnation: string } {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT txid, epoch, incarnation FROM _domicile_meta').get() as { txid: number; epoch: number; incarnation: string };
  } finally {
    db.close();
  }
}

describe('ShardPool', () => {
  it('answers /query and /batch in the wire shape', async () => {
    const { pool, ref } = await setup();
    const a = ref('acme');
    await pool.create(a);
    expect(readMeta(a.path)).toEqual({ txid: 0, epoch: 1, incarnation: 'inc-acme' });
    const ddl = await pool.query(a, { sql: 'CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, big INTEGER, data BLOB, r REAL)' });
    expect(ddl).toMatchObject({ columns: [], columnTypes: [], rows: [], rowsAffected: 0 });
    const ins2 = await pool.query(a, {
      sql: 'INSERT INTO t (name, big, data, r) VALUES (:n, @b, $d, :r)',
      params: { n: 'x', b: { int: '-9223372036854775808' }, d: { base64: '' }, r: 0.5 },
    });
    expect(ins2).toEqual({ columns: [], columnTypes: [], rows: [], rowsAffected: 1, lastInsertRowid: expect.any(Number) });
    const sel = await pool.query(a, { sql: 'SELECT id, name, big, data, r, 1 + 1 AS two FROM t WHERE name = ?', params: ['x'] });
    expect(sel).toEqual({
      columns: ['id', 'name', 'big', 'data', 'r', 'two'],
      columnTypes: ['INTEGER', 'TEXT', 'INTEGER', 'BLOB', 'REAL', null],
      rows: [[ins2.lastInsertRowid, 'x', { int: '-9223372036854775808' }, { base64: '' }, 0.5, 2]],
      rowsAffected: 0,
      lastInsertRowid: null,
    });
    const results = await pool.batch(a, [
      { sql: 'INSERT INTO t (name) VALUES (?) RETURNING id, name', params: ['y'] },
      { sql: 'UPDATE t SET r = 1.25' },
      { sql: 'SELECT count(*) AS n FROM t' },
    ]);
    expect(results).toEqual([
      { columns: ['id', 'name'], columnTypes: ['INTEGER', 'TEXT'], rows: [[2, 'y']], rowsAffected: 1, lastInsertRowid: 2 },
      { columns: [], columnTypes: [], rows: [], rowsAffected: 2, lastInsertRowid: 2 },
      { columns: ['n'], columnTypes: [null], rows: [[2]], rowsAffected: 0, lastInsertRowid: null },
    ]);
  });

  it('refuses malformed parameters and SQL with BAD_REQUEST or SQL_ERROR', async () => {
    const { pool, ref } = await setup();
    const a = ref('acme');
    await pool.create(a);
    await expect(pool.query(a, { sql: 'SELECT ?', params: [[1]] as never })).rejects.toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining('params[0]') });
    await expect(pool.query(a, { sql: 'SELECT :v' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(pool.query(a, { sql: 'SELECT ?, ?', params: [1] })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(pool.query(a, { sql: 'SELECT 1; SELECT 2' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(pool.query(a, { sql: 'SELEC 1' })).rejects.toMatchObject({ code: 'SQL_ERROR', details: { sqliteCode: 'SQLITE_ERROR' } });
  });

  it('commits a batch all or nothing and names the failing statement', async () => {
    const { pool, ref } = await setup();
    const a = ref('acme');
    await pool.create(a);
    await pool.query(a, { sql: 'CREATE TABLE t (id INTEGER PRIMARY KEY)' });
    await pool.query(a, { sql: 'INSERT INTO t VALUES (1)' });
    const err = await pool.batch(a, [
      { sql: 'INSERT INTO t VALUES (2)' },
      { sql: 'INSERT INTO t VALUES (3)' },
      { sql: 'INSERT INTO t VALUES (1)' },
      { sql: 'INSERT INTO t VALUES (4)' },
    ]).catch((e) => e);
    expect(err).toMatchObject({ code: 'SQL_ERROR', details: { statementIndex: 2, sqliteCode: 'SQLITE_CONSTRAINT_PRIMARYKEY' } });
    await expect(pool.batch(a, [{ sql: 'INSERT INTO t VALUES (5)' }, { sql: 'SELECT * FROM missing' }]))
      .rejects.toMatchObject({ code: 'SQL_ERROR', details: { statementIndex: 1 } });
    await expect(pool.batch(a, [{ sql: 'INSERT INTO t VALUES (6)' }, { sql: 'SELECT ?', params: [{ int: 'x' }] }]))
      .rejects.toMatchObject({ code: 'BAD_REQUEST', details: { statementIndex: 1 } });
    const rows = await pool.query(a, { sql: 'SELECT id FROM t ORDER BY id' });
    expect(rows.rows).toEqual([[1]]);
    // The connection is usable and not left inside a transaction.
    await expect(pool.batch(a, [{ sql: 'INSERT INTO t VALUES (2)' }])).resolves.toHaveLength(1);
  });

  it('bumps txid once per committed write transaction and never for reads or failures', async () => {
    const { pool, ref } = await setup();
    const a = ref('acme');
    await pool.create(a);
    await pool.query(a, { sql: 'CREATE TABLE t (x)' });
    expect(readMeta(a.path).txid).toBe(1);
    await pool.batch(a, [{ sql: 'INSERT INTO t VALUES (1)' }, { sql: 'INSERT INTO t VALUES (2)' }, { sql: 'SELECT * FROM t' }]);
    expect(readMeta(a.path).txid).toBe(2);
    await pool.query(a, { sql: 'SELECT * FROM t' });
    await pool.batch(a, [{ sql: 'SELECT 1' }]);
    await pool.batch(a, [{ sql: 'INSERT INTO t VALUES (3)' }, { sql: 'nonsense' }]).catch(() => undefined);
    expect(readMeta(a.path).txid).toBe(2);
    await pool.query(a, { sql: 'PRAGMA user_version = 7' });
    expect(readMeta(a.path).txid).toBe(3);
  });

  it('refuses writes from a read-only request with FORBIDDEN before they run', async () => {
    const { pool, ref } = await setup();
    const a = ref('acme');
    await pool.create(a);
    await pool.query(a, { sql: 'CREATE TABLE t (x)' });
    await expect(pool.query(a, { sql: 'INSERT INTO t VALUES (1)' }, { readOnly: true }))
      .rejects.toMatchObject({ code: 'FORBIDDEN', message: 'read-only token cannot write' });
    await expect(pool.batch(a, [{ sql: 'SELECT 1' }, { sql: 'DELETE FROM t' }], { readOnly: true }))
      .rejects.toMatchObject({ code: 'FORBIDDEN', details: { statementIndex: 1 } });
    await expect(pool.query(a, { sql: 'SELECT count(*) FROM t' }, { readOnly: true })).resolves.toMatchObject({ rows: [[0]] });
  });

  it('stops reading rows at maxResultBytes with RESULT_TOO_LARGE while a small result passes', async () => {
    const { pool, ref } = await setup({ maxResultBytes: 10_000 });
    const a = ref('acme');
    await pool.create(a);
    const big = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) SELECT x, 'some padding text' FROM c";
    await expect(pool.query(a, { sql: big })).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' });
    // An endless result ends at the cap, not at the statement timeout: rows past the cap are never read.
    const t0 = performance.now();
    await expect(pool.query(a, { sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c' }))
      .rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' });
    expect(performance.now() - t0).toBeLessThan(1000);
    const small = await pool.query(a, { sql: big.replace('x < 1000', 'x < 10') });
    expect(small.rows).toHaveLength(10);
    // In a batch the cap covers all results together.
    const half = big.replace('x < 1000', 'x < 200');
    await expect(pool.batch(a, [{ sql: half }, { sql: half }, { sql: half }])).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE', details: { statementIndex: expect.any(Number) } });
  });

  it('fails writes past maxDbBytes with QUOTA_EXCEEDED and keeps the tenant readable', async () => {
    const { pool, ref } = await setup({ maxDbBytes: 64 * 1024 });
    const a = ref('acme');
    await pool.create(a);
    await pool.query(a, { sql: 'CREATE TABLE t (b BLOB)' });
    await pool.query(a, { sql: 'INSERT INTO t VALUES (zeroblob(1000))' });
    await expect(pool.query(a, { sql: 'INSERT INTO t VALUES (zeroblob(200000))' })).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
    await expect(pool.batch(a, [{ sql: 'INSERT INTO t VALUES (1)' }, { sql: 'INSERT INTO t VALUES (zeroblob(200000))' }]))
      .rejects.toMatchObject({ code: 'QUOTA_EXCEEDED', details: { statementIndex: 1 } });
    await expect(pool.query(a, { sql: 'SELECT count(*), sum(length(b)) FROM t' })).resolves.toMatchObject({ rows: [[1, 1000]] });
    await expect(pool.query(a, { sql: 'INSERT INTO t VALUES (zeroblob(10))' })).resolves.toMatchObject({ rowsAffected: 1 });
  });

  it('serves 500 tenants through a 32-handle cache on 2 workers, every row read back', async () => {
    const { pool, ref } = await setup({ workers: 2, maxOpenShards: 32 });
    const tenants = Array.from({ length: 500 }, (_, i) => ref(`t${i}`));
    let maxOpen = 0;
    const sample = setInterval(() => (maxOpen = Math.max(maxOpen, pool.stats().openShards)), 1);
    try {
      await Promise.all(tenants.map(async (t, i) => {
        await pool.create(t);
        await pool.batch(t, [{ sql: 'CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)' }, { sql: 'INSERT INTO kv VALUES (?, ?)', params: [t.tenant, i] }]);
      }));
      const rows = await Promise.all(tenants.map((t) => pool.query(t, { sql: 'SELECT k, v FROM kv' })));
      rows.forEach((r, i) => expect(r.rows).toEqual([[`t${i}`, i]]));
    } finally {
      clearInterval(sample);
    }
    const stats = pool.stats();
    expect(stats.openShards).toBeLessThanOrEqual(32);
    expect(maxOpen).toBeLessThanOrEqual(32);
    expect(stats.evictions).toBeGreaterThan(0);
    expect(stats.opens).toBeGreaterThanOrEqual(500);
  });

  it('keeps a tenant\'s requests in arrival order under concurrency', async () => {
    const { pool, ref } = await setup({ workers: 2 });
    const a = ref('acme');
    const others = [ref('b1'), ref('b2'), ref('b3')];
    for (const t of [a, ...others]) {
      await pool.create(t);
      await pool.query(t, { sql: 'CREATE TABLE log (seq INTEGER)' });
    }
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < 300; i++) {
      pending.push(pool.query(a, { sql: 'INSERT INTO log VALUES (?)', params: [i] }));
      pending.push(pool.query(others[i % 3]!, { sql: 'INSERT INTO log VALUES (?)', params: [i] }));
    }
    const results = (await Promise.all(pending)) as { lastInsertRowid: number }[];
    const ids = results.filter((_, k) => k % 2 === 0).map((r) => r.lastInsertRowid);
    expect(ids).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    const seq = await pool.query(a, { sql: 'SELECT seq FROM log ORDER BY rowid' });
    expect(seq.rows.map((r) => r[0])).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });

  it('erases every file of a tenant after its in-flight request, failing its queued ones', async () => {
    const { pool, ref } = await setup(SLOW_ROOM);
    const a = ref('acme');
    await pool.create(a);
    await pool.query(a, { sql: 'CREATE TABLE t (x)' });
    await pool.query(a, { sql: 'INSERT INTO t VALUES (1)' });
    expect(existsSync(`${a.path}-wal`)).toBe(true);
    const inFlight = pool.query(a, { sql: SLOW });
    // The scheduler dispatches at the end of the event-loop turn (several requests of a tenant travel as one group): let SLOW go alone first.
    await new Promise((r) => setImmediate(r));
    const queued = pool.query(a, { sql: 'SELECT 1' }).catch((e) => e);
    const erased = pool.erase(a);
    await expect(inFlight).resolves.toMatchObject({ rows: [[5000000]] });
    await expect(queued).resolves.toMatchObject({ code: 'TENANT_NOT_FOUND' });
    // Closing the last connection already folds and removes -wal and -shm; the .db at least was there.
    await expect(erased).resolves.toEqual({ files: expect.any(Number) });
    expect((await erased).files).toBeGreaterThanOrEqual(1);
    for (const s of SHARD_FILE_SUFFIXES) expect(existsSync(a.path + s)).toBe(false);
    await expect(pool.query(a, { sql: 'SELECT 1' })).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' });
    // The id can be created again as a new incarnation.
    const again = ref('acme', 'inc-2');
    await pool.create(again);
    await expect(pool.query(again, { sql: 'SELECT count(*) FROM sqlite_master WHERE name = ?', params: ['t'] })).resolves.toMatchObject({ rows: [[0]] });
  });

  it('refuses to create over a stale file, even a lone -wal', async () => {
    const { pool, ref } = await setup();
    const a = ref('acme');
    await pool.create(a);
    await expect(pool.create(a)).rejects.toMatchObject({ code: 'INTERNAL', message: 'stale shard file' });
    await pool.query(a, { sql: 'CREATE TABLE t (x)' });
    await pool.close();
    rmSync(a.path);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(`${a.path}-wal`, 'x');
    const p2 = new ShardPool({ workers: 1, maxOpenShards: 4, statementTimeoutMs: 1000, maxResultBytes: 1000, maxDbBytes: 1 << 20 });
    cleanups.push(() => p2.close());
    await p2.start();
    await expect(p2.create(a)).rejects.toMatchObject({ code: 'INTERNAL', message: 'stale shard file' });
  });

  it('never serves a shard of another incarnation', async () => {
    const { pool, ref } = await setup({ workers: 1 });
    await pool.create(ref('acme', 'old'));
    await pool.query(ref('acme', 'old'), { sql: 'CREATE TABLE secret (x)' });
    // The old handle is cached: the mismatch must still be caught.
    await expect(pool.query(ref('acme', 'new'), { sql: 'SELECT * FROM secret' }))
      .rejects.toMatchObject({ code: 'INTERNAL', message: 'shard belongs to another incarnation' });
    await expect(pool.query(ref('acme', 'new'), { sql: 'SELECT 1' }))
      .rejects.toMatchObject({ code: 'INTERNAL', message: 'shard belongs to another incarnation' });
    await expect(pool.query(ref('nobody'), { sql: 'SELECT 1' })).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' });
  });

  it('checkpoints and closes every handle on close(): no -wal left, data intact', async () => {
    const { pool, ref } = await setup({ workers: 2 });
    const tenants = Array.from({ length: 20 }, (_, i) => ref(`c${i}`));
    await Promise.all(tenants.map(async (t) => {
      await pool.create(t);
      await pool.query(t, { sql: 'CREATE TABLE t (x)' });
    }));
    // Spread each tenant over both workers so two handles share a file at close.
    await Promise.all(tenants.flatMap((t) => Array.from({ length: 10 }, (_, i) => pool.query(t, { sql: 'INSERT INTO t VALUES (?)', params: [i] }))));
    await pool.close();
    await expect(pool.query(tenants[0]!, { sql: 'SELECT 1' })).rejects.toMatchObject({ code: 'NODE_UNAVAILABLE' });
    for (const t of tenants) {
      expect(existsSync(`${t.path}-wal`)).toBe(false);
      const db = new Database(t.path, { readonly: true });
      expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 10 });
      db.close();
    }
  });

  it('exclusive(): runs after earlier requests with every handle closed, later requests wait and see its files', async () => {
    const { pool, ref } = await setup({ replication: true });
    const a = ref('swap');
    await pool.create(a);
    await pool.query(a, { sql: 'CREATE TABLE t (v INTEGER)' });
    const first = pool.query(a, { sql: 'INSERT INTO t VALUES (1)' });
    const seen: number[] = [];
    const excl = pool.exclusive(a, async () => {
      await new Promise((r) => setTimeout(r, 50));
      expect(pool.stats().openShards).toBe(0);
      // A plain connection sees the earlier write and can change the file under the pool.
      const db = new Database(a.path);
      seen.push(...(db.prepare('SELECT v FROM t').pluck().all() as number[]));
      db.prepare('INSERT INTO t VALUES (100)').run();
      db.close();
      return 'swapped';
    });
    const later = pool.query(a, { sql: 'INSERT INTO t VALUES (2)' });
    await expect(excl).resolves.toBe('swapped');
    await first;
    await later;
    expect(seen).toEqual([1]);
    const rows = await pool.query(a, { sql: 'SELECT v FROM t ORDER BY rowid' });
    expect(rows.rows).toEqual([[1], [100], [2]]);
  });

  it('answers OVERLOADED when the queue is full', async () => {
    // SLOW only has to hold the one worker while the queue fills.
    const { pool, ref } = await setup({ workers: 1, maxQueue: 2, ...SLOW_ROOM });
    const a = ref('acme');
    await pool.create(a);
    const busy = pool.query(a, { sql: SLOW });
    const q1 = pool.query(a, { sql: 'SELECT 1' });
    const q2 = pool.query(ref('other'), { sql: 'SELECT 1' }).catch((e) => e);
    await expect(pool.query(a, { sql: 'SELECT 1' })).rejects.toMatchObject({ code: 'OVERLOADED', statusCode: 503 });
    expect(pool.stats().queued).toBe(2);
    await busy;
    await q1;
    await q2;
    await expect(pool.query(a, { sql: 'SELECT 1' })).resolves.toMatchObject({ rows: [[1]] });
  });

  it('keeps scheduler state only for tenants with an open handle or work: evicted tenants are forgotten', async () => {
    const { pool, ref } = await setup({ workers: 1, maxOpenShards: 4 });
    for (let i = 0; i < 30; i++) {
      const t = ref(`many-${i}`);
      await pool.create(t);
      await pool.query(t, { sql: 'SELECT 1' });
    }
    const stats = pool.stats();
    expect(stats.evictions).toBeGreaterThanOrEqual(26);
    // Without forgetting on eviction, all 30 would still be tracked (memory growing with every tenant ever served).
    expect(stats.trackedTenants).toBeLessThanOrEqual(stats.openShards + 1);
    // A forgotten tenant is served again as usual.
    await expect(pool.query(ref('many-0'), { sql: 'SELECT 7' })).resolves.toMatchObject({ rows: [[7]] });
  });

  it('replaces a crashed worker and fails only its in-flight request', async () => {
    const logs: string[] = [];
    const logger = { info() {}, warn() {}, error: (_o: object, m?: string) => void logs.push(m ?? '') };
    const { pool, ref } = await setup({ workers: 1, logger });
    const a = ref('acme');
    await pool.create(a);
    const inFlight = pool.query(a, { sql: SLOW });
    await new Promise((r) => setTimeout(r, 100));
    pool._crashWorker(0, 'terminate');
    await expect(inFlight).rejects.toMatchObject({ code: 'INTERNAL' });
    await expect(pool.query(a, { sql: 'SELECT 1' })).resolves.toMatchObject({ rows: [[1]] });
    pool._crashWorker(0, 'throw');
    await new Promise((r) => setTimeout(r, 200));
    await expect(pool.query(a, { sql: 'SELECT 2' })).resolves.toMatchObject({ rows: [[2]] });
    expect(pool.stats().workers).toBe(1);
    expect(logs.filter((m) => m.includes('crashed'))).toHaveLength(2);
  });
});

describe('ShardPool with the statement guard', () => {
  it('interrupts a runaway query on one tenant while others keep answering fast', async () => {
    const { pool, ref } = await setup({ workers: 2, statementTimeoutMs: 1000 });
    const a = ref('runaway');
    const b = ref('bystander');
    await pool.create(a);
    await pool.create(b);
    await pool.query(b, { sql: 'CREATE TABLE t (x)' });
    await pool.query(a, { sql: 'SELECT 1' });
    const t0 = performance.now();
    const runaway = pool.query(a, { sql: RUNAWAY }).catch((e) => e);
    let maxLatency = 0;
    let answered = 0;
    let done = false;
    void runaway.then(() => (done = true));
    while (!done) {
      const s = performance.now();
      await pool.query(b, { sql: 'INSERT INTO t VALUES (1)' });
      await pool.query(b, { sql: 'SELECT count(*) FROM t' });
      maxLatency = Math.max(maxLatency, performance.now() - s);
      answered++;
    }
    const err = await runaway;
    expect(err).toMatchObject({ code: 'QUERY_TIMEOUT' });
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(answered).toBeGreaterThan(5);
    // Well under the timeout: the bystander never waited for the runaway statement (a loaded CI box adds jitter).
    expect(maxLatency).toBeLessThan(400);
    await expect(pool.query(a, { sql: 'SELECT 41 + 1' })).resolves.toMatchObject({ rows: [[42]] });
    expect(pool.stats().interrupts).toBe(1);
  });

  it('takes back the requests posted behind a runaway statement in the same message: another worker answers them, each exactly once', async () => {
    const { pool, ref } = await setup({ workers: 2, maxOpenShards: 64, statementTimeoutMs: 1500 });
    const a = ref('runaway');
    await pool.create(a);
    const others = Array.from({ length: 16 }, (_, i) => ref(`bystander-${i}`));
    for (const t of others) {
      await pool.create(t);
      await pool.query(t, { sql: 'CREATE TABLE t (x)' });
    }
    // One event-loop turn: the runaway and the inserts are dispatched in one pass, so about half of the inserts travel in the runaway's message.
    const t0 = performance.now();
    const runaway = pool.query(a, { sql: RUNAWAY }).catch((e) => e);
    const latencies = await Promise.all(others.map(async (t) => {
      await pool.query(t, { sql: 'INSERT INTO t VALUES (1)' });
      return performance.now() - t0;
    }));
    // Far under the 1.5 s timeout: without taking them back, the ones behind the runaway would wait for its interrupt.
    expect(Math.max(...latencies)).toBeLessThan(700);
    expect(await runaway).toMatchObject({ code: 'QUERY_TIMEOUT' });
    // The worker skipped what was taken back: every insert ran once.
    for (const t of others) await expect(pool.query(t, { sql: 'SELECT count(*) FROM t' })).resolves.toMatchObject({ rows: [[1]] });
  });

  it('fails a request taken back from a stuck worker while its tenant is being erased, instead of leaving it waiting forever', async () => {
    const { pool, ref } = await setup({ workers: 1, statementTimeoutMs: 1500 });
    const a = ref('runaway');
    const b = ref('erased-meanwhile');
    await pool.create(a);
    await pool.create(b);
    // One turn: both travel in one message to the only worker, b's request behind the runaway.
    const runaway = pool.query(a, { sql: RUNAWAY }).catch((e) => e);
    const behind = pool.query(b, { sql: 'SELECT 1' }).then(() => 'answered', (e: { code?: string }) => e.code);
    // Erase once both are posted (after the dispatching turn) and before the take-back (10 ms of silence).
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 2));
    const erased = pool.erase(b);
    // Taken back after ~10 ms of silence; the tenant is being erased, so it is failed at once.
    const within = await Promise.race([behind, new Promise((r) => setTimeout(() => r('pending'), 1000))]);
    expect(within).toBe('TENANT_NOT_FOUND');
    await erased;
    expect(await runaway).toMatchObject({ code: 'QUERY_TIMEOUT' });
  });

  it('runs a request taken back from a stuck worker once that worker frees up, even when its skip arrives last (no lost wake-up)', async () => {
    // One worker, one message in flight: the taken-back request can only run on the same worker, once the
    // runaway's answer AND the skip of the taken-back part have both arrived. The skip is delayed so that it
    // arrives after the pump that followed the runaway's answer (on a loaded machine the worker is just slow).
    const { pool, ref } = await setup({ workers: 1, messagesPerWorker: 1, statementTimeoutMs: 300, testSkipDelayMs: 100 });
    const a = ref('runaway');
    const b = ref('behind');
    await pool.create(a);
    await pool.create(b);
    const runaway = pool.query(a, { sql: RUNAWAY }).catch((e) => e);
    const behind = pool.query(b, { sql: 'SELECT 2' }).then((r) => r.rows, (e: { code?: string }) => e.code);
    const within = await Promise.race([behind, new Promise((r) => setTimeout(() => r('pending'), 3000))]);
    expect(within).toEqual([[2]]);
    expect(await runaway).toMatchObject({ code: 'QUERY_TIMEOUT' });
  });

  it('keeps earlier commits after an interrupt inside a batch', async () => {
    const { pool, ref } = await setup({ workers: 1, statementTimeoutMs: 300 });
    const a = ref('acme');
    await pool.create(a);
    await pool.query(a, { sql: 'CREATE TABLE t (x)' });
    await pool.query(a, { sql: 'INSERT INTO t VALUES (1)' });
    await expect(pool.batch(a, [{ sql: 'INSERT INTO t VALUES (2)' }, { sql: RUNAWAY }]))
      .rejects.toMatchObject({ code: 'QUERY_TIMEOUT', details: { statementIndex: 1 } });
    await expect(pool.query(a, { sql: 'SELECT x FROM t' })).resolves.toMatchObject({ rows: [[1]] });
  });

  it('refuses transaction control and _domicile_ writes from tenant SQL', async () => {
    const { pool, ref } = await setup({ workers: 1 });
    const a = ref('acme');
    await pool.create(a);
    await expect(pool.query(a, { sql: 'BEGIN' })).rejects.toMatchObject({ code: 'STATEMENT_NOT_ALLOWED' });
    await expect(pool.batch(a, [{ sql: 'SELECT 1' }, { sql: 'COMMIT' }])).rejects.toMatchObject({ code: 'STATEMENT_NOT_ALLOWED', details: { statementIndex: 1 } });
    await expect(pool.query(a, { sql: 'UPDATE _domicile_meta SET txid = 99' })).rejects.toMatchObject({ code: 'STATEMENT_NOT_ALLOWED' });
    await pool.query(a, { sql: 'CREATE TABLE t (x)' });
    await expect(pool.query(a, { sql: 'INSERT INTO t VALUES (1)' })).resolves.toMatchObject({ rowsAffected: 1 });
  });
});
