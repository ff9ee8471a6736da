/**
 * Acceptance tests of Hrana over HTTP v2 with the unmodified @libsql/client
 * against a real `domicile serve` process.
 */
import { createClient, type Client } from '@libsql/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDomicile, type DomicileServer } from '@domicile/testkit';

const IDLE_MS = 1500;
let s: DomicileServer;
const clients: Client[] = [];

async function tenantToken(tenant: string, scope: 'read' | 'write'): Promise<string> {
  const r = await s.api('POST', `/v1/tenants/${tenant}/tokens`, { scope });
  expect(r.status).toBe(201);
  return r.body.token as string;
}

/** A client on the per-tenant URL (trailing slash) or on the root with `/v2/pipeline`. */
function client(opts: { tenant?: string; authToken: string; intMode?: 'number' | 'bigint' }): Client {
  const url = opts.tenant ? `${s.url}/v1/tenants/${opts.tenant}/` : s.url;
  const c = createClient({ url, authToken: opts.authToken, ...(opts.intMode ? { intMode: opts.intMode } : {}) });
  clients.push(c);
  return c;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  s = await startDomicile({ env: { DOMICILE_SESSION_IDLE_TIMEOUT_MS: String(IDLE_MS), DOMICILE_STATEMENT_TIMEOUT_MS: '5000' } });
  for (const id of ['acme', 'beta']) {
    expect((await s.api('POST', '/v1/tenants', { id, residency: 'eu' })).status).toBe(201);
    expect((await s.api('POST', `/v1/tenants/${id}/query`, { sql: 'CREATE TABLE kv (k TEXT PRIMARY KEY, v)' })).status).toBe(200);
  }
}, 30_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await s?.dispose();
});

describe('Hrana over HTTP v2 with @libsql/client', () => {
  it('executes with positional and named args; bigints and blobs round-trip', async () => {
    const db = client({ tenant: 'acme', authToken: await tenantToken('acme', 'write'), intMode: 'bigint' });
    await db.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: ['big', 9223372036854775807n] });
    await db.execute({ sql: 'INSERT INTO kv VALUES (:k, :v)', args: { k: 'blob', v: new Uint8Array([0, 1, 2, 255]) } });
    await db.execute({ sql: 'INSERT INTO kv VALUES ($k, @v)', args: { k: 'text', v: 'héllo' } });
    await db.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: ['real', 2.5] });
    const r = await db.execute("SELECT k, v, typeof(v) AS t FROM kv WHERE k IN ('big', 'blob', 'text', 'real') ORDER BY k");
    expect(r.columns).toEqual(['k', 'v', 't']);
    expect(r.columnTypes).toEqual(['TEXT', '', '']);
    const rows = r.rows.map((row) => [row.k, row.v, row.t]);
    expect(rows[0]).toEqual(['big', 9223372036854775807n, 'integer']);
    expect(rows[1]![0]).toBe('blob');
    expect(new Uint8Array(rows[1]![1] as ArrayBuffer)).toEqual(new Uint8Array([0, 1, 2, 255]));
    expect(rows[2]).toEqual(['real', 2.5, 'real']);
    expect(rows[3]).toEqual(['text', 'héllo', 'text']);
    const ins = await db.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: ['rowid', 1] });
    expect(ins.rowsAffected).toBe(1);
    expect(typeof ins.lastInsertRowid).toBe('bigint');
  });

  it('runs batch(..., "write") all or nothing', async () => {
    const db = client({ tenant: 'acme', authToken: await tenantToken('acme', 'write') });
    const ok = await db.batch([
      { sql: 'INSERT INTO kv VALUES (?, ?)', args: ['b1', 1] },
      { sql: 'INSERT INTO kv VALUES (?, ?)', args: ['b2', 2] },
      "SELECT count(*) AS n FROM kv WHERE k LIKE 'b_'",
    ], 'write');
    expect(ok[2]!.rows[0]!.n).toBe(2);
    await expect(db.batch([
      { sql: 'INSERT INTO kv VALUES (?, ?)', args: ['b3', 3] },
      { sql: 'INSERT INTO kv VALUES (?, ?)', args: ['b1', 1] },
    ], 'write')).rejects.toMatchObject({ code: 'SQL_ERROR' });
    const n = await db.execute("SELECT count(*) AS n FROM kv WHERE k = 'b3'");
    expect(n.rows[0]!.n).toBe(0);
    // The tenant is free again: the failed batch's transaction did not linger.
    expect((await s.api('POST', '/v1/tenants/acme/query', { sql: 'SELECT 1' })).status).toBe(200);
  });

  it('commits and rolls back interactive transactions', async () => {
    const db = client({ tenant: 'acme', authToken: await tenantToken('acme', 'write') });
    const tx = await db.transaction('write');
    await tx.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: ['tx1', 1] });
    expect((await tx.execute("SELECT v FROM kv WHERE k = 'tx1'")).rows[0]!.v).toBe(1);
    await tx.commit();
    expect((await db.execute("SELECT count(*) AS n FROM kv WHERE k = 'tx1'")).rows[0]!.n).toBe(1);

    const tx2 = await db.transaction('write');
    await tx2.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: ['tx2', 1] });
    await tx2.execute({ sql: "UPDATE kv SET v = 99 WHERE k = 'tx1'" });
    await tx2.rollback();
    const after = await db.execute("SELECT k, v FROM kv WHERE k IN ('tx1', 'tx2') ORDER BY k");
    expect(after.rows.map((r) => [r.k, r.v])).toEqual([['tx1', 1]]);

    const ro = await db.transaction('read');
    expect((await ro.execute("SELECT v FROM kv WHERE k = 'tx1'")).rows[0]!.v).toBe(1);
    await expect(ro.execute("DELETE FROM kv")).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await ro.rollback();
  });

  it('hands coded errors to the client', async () => {
    const db = client({ tenant: 'acme', authToken: await tenantToken('acme', 'write') });
    await db.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: ['dup', 1] });
    await expect(db.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: ['dup', 1] })).rejects.toMatchObject({ code: 'SQL_ERROR' });
    await expect(db.execute("ATTACH '/etc/passwd' AS p")).rejects.toMatchObject({ code: 'STATEMENT_NOT_ALLOWED' });
    const tx = await db.transaction('write');
    await expect(tx.execute("ATTACH 'x.db' AS x")).rejects.toMatchObject({ code: 'STATEMENT_NOT_ALLOWED' });
    await tx.rollback();
  });

  it('serves /v2/pipeline with a tenant token and refuses admin tokens there, Hrana-shaped', async () => {
    const db = client({ authToken: await tenantToken('beta', 'write') });
    await db.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: ['root', 1] });
    const check = await s.api('POST', '/v1/tenants/beta/query', { sql: "SELECT v FROM kv WHERE k = 'root'" });
    expect(check.body.rows).toEqual([[1]]);
    const admin = client({ authToken: s.adminToken });
    await expect(admin.execute('SELECT 1')).rejects.toMatchObject({ code: 'FORBIDDEN' });
    // An admin token works on the per-tenant URL.
    expect((await client({ tenant: 'beta', authToken: s.adminToken }).execute('SELECT 1 AS one')).rows[0]!.one).toBe(1);

    const raw = await fetch(`${s.url}/v2/pipeline`, { method: 'POST', headers: { authorization: `Bearer ${s.adminToken}`, 'content-type': 'application/json' }, body: '{"requests":[]}' });
    expect(raw.status).toBe(403);
    expect(raw.headers.get('content-type')).toBe('application/json');
    expect(await raw.json()).toMatchObject({ code: 'FORBIDDEN', message: expect.any(String) });
    const badJson = await fetch(`${s.url}/v1/tenants/beta/v2/pipeline`, { method: 'POST', headers: { authorization: `Bearer ${s.adminToken}`, 'content-type': 'application/json' }, body: '{nope' });
    expect(badJson.status).toBe(400);
    expect(badJson.headers.get('content-type')).toBe('application/json');
    expect(await badJson.json()).toMatchObject({ code: 'BAD_REQUEST' });
    const badBaton = await fetch(`${s.url}/v1/tenants/beta/v2/pipeline`, { method: 'POST', headers: { authorization: `Bearer ${s.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ baton: 'abc.1.def', requests: [{ type: 'close' }] }) });
    expect(badBaton.status).toBe(400);
    expect(await badBaton.json()).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/baton/) });
    expect((await fetch(`${s.url}/v2`)).status).toBe(200);
    expect((await fetch(`${s.url}/v1/tenants/beta/v2`)).status).toBe(200);
  });

  it('runs executeMultiple (Hrana sequence) on both URL forms, in autocommit and inside a transaction', async () => {
    const token = await tenantToken('acme', 'write');
    for (const [i, db] of [client({ tenant: 'acme', authToken: token }), client({ authToken: token })].entries()) {
      await db.executeMultiple(`
        CREATE TABLE IF NOT EXISTS m (x TEXT);
        INSERT INTO m VALUES ('a-${i};x'); -- one statement; the ; in the string does not split
        BEGIN; INSERT INTO m VALUES ('b-${i}'); COMMIT;
        BEGIN; INSERT INTO m VALUES ('gone${i}'); ROLLBACK;`);
      expect((await db.execute(`SELECT x FROM m WHERE x LIKE '%-${i}%' ORDER BY rowid`)).rows.map((r) => r.x)).toEqual([`a-${i};x`, `b-${i}`]);
      // The first failure stops the script and reaches the client with its code.
      await expect(db.executeMultiple(`INSERT INTO m VALUES ('c${i}'); ATTACH 'x.db' AS x; INSERT INTO m VALUES ('d${i}')`)).rejects.toMatchObject({ code: 'STATEMENT_NOT_ALLOWED' });
      // A script that leaves its transaction open is rolled back when the client closes the stream.
      await db.executeMultiple(`BEGIN; INSERT INTO m VALUES ('open${i}')`);
      expect((await db.execute(`SELECT x FROM m WHERE x IN ('c${i}', 'd${i}', 'open${i}')`)).rows.map((r) => r.x)).toEqual([`c${i}`]);
    }
    const db = client({ tenant: 'acme', authToken: token });
    const tx = await db.transaction('write');
    await tx.executeMultiple("INSERT INTO m VALUES ('tx1'); INSERT INTO m VALUES ('tx2')");
    await tx.rollback();
    expect((await db.execute("SELECT count(*) AS n FROM m WHERE x LIKE 'tx_'")).rows[0]!.n).toBe(0);
    const ro = client({ tenant: 'acme', authToken: await tenantToken('acme', 'read') });
    await expect(ro.executeMultiple("SELECT 1; INSERT INTO m VALUES ('ro')")).rejects.toMatchObject({ code: 'FORBIDDEN' });
  });

  it('refuses writes from a read token, also inside a transaction', async () => {
    const token = await tenantToken('acme', 'read');
    for (const db of [client({ tenant: 'acme', authToken: token }), client({ authToken: token })]) {
      expect((await db.execute('SELECT count(*) AS n FROM kv')).rows.length).toBe(1);
      await expect(db.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: ['ro', 1] })).rejects.toMatchObject({ code: 'FORBIDDEN' });
      const tx = await db.transaction('write');
      await expect(tx.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: ['ro', 1] })).rejects.toMatchObject({ code: 'FORBIDDEN' });
      await tx.rollback();
    }
    const other = client({ tenant: 'beta', authToken: token });
    await expect(other.execute('SELECT 1')).rejects.toMatchObject({ code: 'FORBIDDEN' });
  });

  it('rolls back an abandoned transaction after the idle timeout and releases the tenant', async () => {
    const db = client({ tenant: 'acme', authToken: await tenantToken('acme', 'write') });
    const tx = await db.transaction('write');
    await tx.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: ['abandoned', 1] });
    // Never committed nor closed. Another request for the tenant waits for the expiry, then proceeds.
    const started = Date.now();
    const r = await s.api('POST', '/v1/tenants/acme/query', { sql: "SELECT count(*) FROM kv WHERE k = 'abandoned'" });
    expect(r.status).toBe(200);
    expect(r.body.rows).toEqual([[0]]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(IDLE_MS - 300);
    // The abandoned stream's baton is dead: the client gets an error, not a statement outside its transaction.
    await expect(tx.execute('SELECT 1')).rejects.toBeDefined();
    tx.close();
  });

  it("does not let one tenant's open transaction block another tenant's", async () => {
    const a = client({ tenant: 'acme', authToken: await tenantToken('acme', 'write') });
    const b = client({ tenant: 'beta', authToken: await tenantToken('beta', 'write') });
    const ta = await a.transaction('write');
    await ta.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: ['par-a', 1] });
    const started = Date.now();
    const tb = await b.transaction('write');
    await tb.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: ['par-b', 1] });
    await tb.commit();
    expect(Date.now() - started).toBeLessThan(IDLE_MS / 2);
    await ta.commit();
    expect((await a.execute("SELECT count(*) AS n FROM kv WHERE k = 'par-a'")).rows[0]!.n).toBe(1);
    expect((await b.execute("SELECT count(*) AS n FROM kv WHERE k = 'par-b'")).rows[0]!.n).toBe(1);
    await sleep(0);
  });
});
