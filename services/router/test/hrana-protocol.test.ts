/**
 * Hrana over HTTP v2 at the protocol level (raw pipeline bodies): `sequence`
 * and `describe`, which @libsql/client exposes only partly (`executeMultiple`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testApp, type TestApp } from './harness.ts';

let t: TestApp;
let writeToken: string;
let readToken: string;

type Req = Record<string, unknown>;
const pipeline = async (requests: Req[], opts: { baton?: string | null; token?: string; tenant?: string } = {}) => {
  const r = await t.req('POST', `/v1/tenants/${opts.tenant ?? 'seq'}/v2/pipeline`, { baton: opts.baton ?? null, requests }, opts.token ?? writeToken);
  expect(r.status).toBe(200);
  return r.body as { baton: string | null; results: { type: string; response?: any; error?: { message: string; code: string } }[] };
};
const q = async (sql: string) => (await t.req('POST', '/v1/tenants/seq/query', { sql })).body;
const count = async (where: string) => (await q(`SELECT count(*) FROM s WHERE ${where}`)).rows[0][0] as number;
const token = async (scope: 'read' | 'write') => {
  const r = await t.req('POST', '/v1/tenants/seq/tokens', { scope });
  expect(r.status).toBe(201);
  return r.body.token as string;
};

beforeAll(async () => {
  t = await testApp({ DOMICILE_MAX_RESULT_BYTES: '4096' });
  expect((await t.req('POST', '/v1/tenants', { id: 'seq', residency: 'moon' })).status).toBe(201);
  expect((await q('CREATE TABLE kv (k TEXT PRIMARY KEY, v)')).rowsAffected).toBe(0);
  writeToken = await token('write');
  readToken = await token('read');
});
afterAll(async () => t.close());

describe('Hrana sequence', () => {
  it('runs a script statement by statement in autocommit; semicolons in strings and triggers do not split', async () => {
    const sql = `CREATE TABLE s (x TEXT, n INT);
      CREATE TRIGGER s_n AFTER INSERT ON s BEGIN UPDATE s SET n = length(new.x) WHERE rowid = new.rowid; END;
      INSERT INTO s (x) VALUES ('a;b'); -- a comment; still one statement
      INSERT INTO s (x) VALUES ('c');`;
    const r = await pipeline([{ type: 'sequence', sql }]);
    expect(r.results).toEqual([{ type: 'ok', response: { type: 'sequence' } }]);
    expect(r.baton).toBeNull();
    expect((await q('SELECT x, n FROM s ORDER BY rowid')).rows).toEqual([['a;b', 3], ['c', 1]]);
  });

  it('stops at the first failing statement; what ran before stays', async () => {
    const r = await pipeline([{ type: 'sequence', sql: "INSERT INTO s VALUES ('f1', 0); INSERT INTO nosuch VALUES (1); INSERT INTO s VALUES ('f2', 0)" }]);
    expect(r.results[0]).toMatchObject({ type: 'error', error: { code: 'SQL_ERROR', message: expect.stringMatching(/nosuch.*\(statement 2 of the sequence\)$/) } });
    expect(await count("x = 'f1'")).toBe(1);
    expect(await count("x = 'f2'")).toBe(0);
  });

  it('goes through the statement guard for every statement', async () => {
    const r = await pipeline([{ type: 'sequence', sql: "INSERT INTO s VALUES ('g1', 0); ATTACH '/tmp/x.db' AS x; INSERT INTO s VALUES ('g2', 0)" }]);
    expect(r.results[0]).toMatchObject({ type: 'error', error: { code: 'STATEMENT_NOT_ALLOWED' } });
    expect(await count("x LIKE 'g_'")).toBe(1);
    const pragma = await pipeline([{ type: 'sequence', sql: 'PRAGMA writable_schema = 1' }]);
    expect(pragma.results[0]).toMatchObject({ type: 'error', error: { code: 'STATEMENT_NOT_ALLOWED' } });
  });

  it('refuses writes with a read token and still runs reads', async () => {
    const ok = await pipeline([{ type: 'sequence', sql: 'SELECT 1; SELECT count(*) FROM s' }], { token: readToken });
    expect(ok.results[0]).toEqual({ type: 'ok', response: { type: 'sequence' } });
    const r = await pipeline([{ type: 'sequence', sql: "SELECT 1; INSERT INTO s VALUES ('ro', 0)" }], { token: readToken });
    expect(r.results[0]).toMatchObject({ type: 'error', error: { code: 'FORBIDDEN' } });
    const tx = await pipeline([{ type: 'sequence', sql: "BEGIN; INSERT INTO s VALUES ('ro', 0); COMMIT" }, { type: 'close' }], { token: readToken });
    expect(tx.results[0]).toMatchObject({ type: 'error', error: { code: 'FORBIDDEN' } });
    expect(await count("x = 'ro'")).toBe(0);
  });

  it('applies the result cap to each statement', async () => {
    const r = await pipeline([{ type: 'sequence', sql: "INSERT INTO s VALUES ('cap', 0); SELECT zeroblob(8000)" }]);
    expect(r.results[0]).toMatchObject({ type: 'error', error: { code: 'RESULT_TOO_LARGE' } });
    expect(await count("x = 'cap'")).toBe(1);
  });

  it('runs BEGIN ... COMMIT and BEGIN ... ROLLBACK inside one sequence as a transaction', async () => {
    const commit = await pipeline([{ type: 'sequence', sql: "BEGIN; INSERT INTO s VALUES ('t1', 0); INSERT INTO s VALUES ('t2', 0); COMMIT;" }]);
    expect(commit.results[0]).toEqual({ type: 'ok', response: { type: 'sequence' } });
    expect(commit.baton).toBeNull();
    expect(await count("x IN ('t1', 't2')")).toBe(2);
    const rollback = await pipeline([{ type: 'sequence', sql: "BEGIN IMMEDIATE; INSERT INTO s VALUES ('t3', 0); ROLLBACK" }]);
    expect(rollback.results[0]).toEqual({ type: 'ok', response: { type: 'sequence' } });
    expect(await count("x = 't3'")).toBe(0);
    // A failure inside the transaction stops the sequence; the stream's close rolls the transaction back.
    const failed = await pipeline([
      { type: 'sequence', sql: "BEGIN; INSERT INTO s VALUES ('t4', 0); INSERT INTO nosuch VALUES (1); COMMIT" },
      { type: 'get_autocommit' },
      { type: 'close' },
    ]);
    expect(failed.results[0]).toMatchObject({ type: 'error', error: { code: 'SQL_ERROR' } });
    expect(failed.results[1]).toEqual({ type: 'ok', response: { type: 'get_autocommit', is_autocommit: false } });
    expect(await count("x = 't4'")).toBe(0);
  });

  it('keeps an open transaction across requests with the baton, and runs stored SQL by sql_id', async () => {
    const first = await pipeline([
      { type: 'store_sql', sql_id: 7, sql: "INSERT INTO s VALUES ('b2', 0); COMMIT" },
      { type: 'sequence', sql: "BEGIN; INSERT INTO s VALUES ('b1', 0)" },
    ]);
    expect(first.results.map((r) => r.type)).toEqual(['ok', 'ok']);
    expect(typeof first.baton).toBe('string');
    const second = await pipeline([{ type: 'sequence', sql_id: 7 }, { type: 'get_autocommit' }, { type: 'close' }], { baton: first.baton });
    expect(second.results[0]).toEqual({ type: 'ok', response: { type: 'sequence' } });
    expect(second.results[1]).toEqual({ type: 'ok', response: { type: 'get_autocommit', is_autocommit: true } });
    expect(await count("x IN ('b1', 'b2')")).toBe(2);
  });

  it('answers BAD_REQUEST for a sequence without SQL or with an unknown sql_id', async () => {
    const r = await pipeline([{ type: 'sequence' }, { type: 'sequence', sql_id: 99 }, { type: 'sequence', sql: ' ; -- nothing' }]);
    expect(r.results[0]).toMatchObject({ type: 'error', error: { code: 'BAD_REQUEST' } });
    expect(r.results[1]).toMatchObject({ type: 'error', error: { code: 'BAD_REQUEST' } });
    expect(r.results[2]).toEqual({ type: 'ok', response: { type: 'sequence' } });
  });
});

describe('Hrana describe', () => {
  it('describes parameters, columns, explain and read-only without running anything', async () => {
    const r = await pipeline([
      { type: 'describe', sql: 'SELECT k, v, ? AS p FROM kv WHERE k = :key OR k = ?3' },
      { type: 'describe', sql: "INSERT INTO kv VALUES ('described', 1)" },
      { type: 'describe', sql: 'DELETE FROM kv' },
      { type: 'describe', sql: 'EXPLAIN QUERY PLAN SELECT * FROM kv' },
    ]);
    expect(r.results[0]).toEqual({ type: 'ok', response: { type: 'describe', result: {
      params: [{ name: null }, { name: ':key' }, { name: '?3' }],
      cols: [{ name: 'k', decltype: 'TEXT' }, { name: 'v', decltype: null }, { name: 'p', decltype: null }],
      is_explain: false, is_readonly: true,
    } } });
    expect(r.results[1]).toEqual({ type: 'ok', response: { type: 'describe', result: { params: [], cols: [], is_explain: false, is_readonly: false } } });
    expect(r.results[2]!.response.result.is_readonly).toBe(false);
    expect(r.results[3]!.response.result).toMatchObject({ is_explain: true, is_readonly: true });
    expect(r.baton).toBeNull();
    await q("INSERT INTO kv VALUES ('kept', 1)");
    expect((await q("SELECT k FROM kv WHERE k IN ('described', 'kept')")).rows).toEqual([['kept']]);
  });

  it('goes through the guard and reports SQL errors', async () => {
    const r = await pipeline([
      { type: 'describe', sql: "ATTACH '/tmp/x.db' AS x" },
      { type: 'describe', sql: 'SELECT * FROM nosuch' },
      { type: 'describe', sql: 'SELECT 1; SELECT 2' },
      { type: 'describe', sql: 'DELETE FROM _domicile_meta' },
    ]);
    expect(r.results.map((x) => x.error?.code)).toEqual(['STATEMENT_NOT_ALLOWED', 'SQL_ERROR', 'BAD_REQUEST', 'STATEMENT_NOT_ALLOWED']);
  });

  it('lets a read token describe a write (nothing runs) and tells it is not read-only', async () => {
    const r = await pipeline([{ type: 'describe', sql: 'UPDATE kv SET v = 2' }], { token: readToken });
    expect(r.results[0]).toMatchObject({ type: 'ok', response: { result: { is_readonly: false } } });
    expect((await q("SELECT v FROM kv WHERE k = 'kept'")).rows).toEqual([[1]]);
  });

  it('describes transaction control without opening a transaction, and inside an open one sees its schema', async () => {
    const begin = await pipeline([{ type: 'describe', sql: 'BEGIN' }, { type: 'get_autocommit' }]);
    expect(begin.results[0]).toMatchObject({ type: 'ok', response: { result: { cols: [], params: [] } } });
    expect(begin.results[1]).toEqual({ type: 'ok', response: { type: 'get_autocommit', is_autocommit: true } });
    expect(begin.baton).toBeNull();

    // Within a transaction the stream's session holds the tenant: describe must run there, not queue behind it.
    const started = Date.now();
    const tx = await pipeline([
      { type: 'execute', stmt: { sql: 'BEGIN' } },
      { type: 'execute', stmt: { sql: 'CREATE TABLE in_tx (a INTEGER, b BLOB)' } },
      { type: 'describe', sql: 'SELECT a, b FROM in_tx WHERE a = @a' },
      { type: 'describe', sql: 'COMMIT' },
      { type: 'get_autocommit' },
      { type: 'execute', stmt: { sql: 'SELECT count(*) FROM in_tx' } },
      { type: 'close' },
    ]);
    expect(tx.results[2]).toEqual({ type: 'ok', response: { type: 'describe', result: {
      params: [{ name: '@a' }], cols: [{ name: 'a', decltype: 'INTEGER' }, { name: 'b', decltype: 'BLOB' }], is_explain: false, is_readonly: true,
    } } });
    expect(tx.results[3]).toMatchObject({ type: 'ok' });
    expect(tx.results[4]).toEqual({ type: 'ok', response: { type: 'get_autocommit', is_autocommit: false } });
    expect(tx.results[5]!.response.result.rows).toEqual([[{ type: 'integer', value: '0' }]]);
    expect(Date.now() - started).toBeLessThan(5000);
    // The close rolled the transaction back: describing COMMIT did not commit it.
    expect((await t.req('POST', '/v1/tenants/seq/query', { sql: 'SELECT * FROM in_tx' })).body.error.code).toBe('SQL_ERROR');
  });
});
