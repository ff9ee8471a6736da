import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testApp, type TestApp } from './harness.ts';

let t: TestApp;
const q = (tenant: string, sql: string, params?: unknown, token?: string | null) =>
  t.req('POST', `/v1/tenants/${tenant}/query`, { sql, ...(params !== undefined ? { params } : {}) }, token);
const token = async (tenant: string, scope: 'read' | 'write', ttlSeconds?: number): Promise<string> => {
  const r = await t.req('POST', `/v1/tenants/${tenant}/tokens`, { scope, ...(ttlSeconds ? { ttlSeconds } : {}) });
  expect(r.status).toBe(201);
  expect(Date.parse(r.body.expiresAt)).toBeGreaterThan(Date.now());
  return r.body.token as string;
};

beforeAll(async () => {
  t = await testApp({ DOMICILE_TOKEN_SECRET: 'k2:new-secret-new-secret-new-secret-1234,k1:old-secret-old-secret-old-secret-1234' });
  for (const id of ['alpha', 'beta']) {
    expect((await t.req('POST', '/v1/tenants', { id, residency: 'moon' })).status).toBe(201);
    expect((await q(id, 'CREATE TABLE kv (k TEXT PRIMARY KEY, v)')).status).toBe(200);
  }
});
afterAll(async () => t.close());

describe('SQL API', () => {
  it('binds positional and named parameters (:v @v $v) and reports columns and declared types', async () => {
    expect((await q('alpha', 'INSERT INTO kv VALUES (?, ?)', ['a', 1])).body).toMatchObject({ rowsAffected: 1 });
    for (const p of [':v', '@v', '$v']) {
      expect((await q('alpha', `INSERT INTO kv VALUES ('n${p[0]}', ${p})`, { v: 2 })).status).toBe(200);
    }
    const r = await q('alpha', 'SELECT k, v, v * 2 AS twice FROM kv WHERE k = ?', ['a']);
    expect(r.body).toMatchObject({ columns: ['k', 'v', 'twice'], columnTypes: ['TEXT', null, null], rows: [['a', 1, 2]] });
  });

  it('round-trips large integers, blobs and booleans without loss', async () => {
    const big = { int: '9223372036854775807' };
    const small = { int: '-9223372036854775808' };
    const blob = { base64: Buffer.from([0, 1, 2, 255]).toString('base64') };
    await q('alpha', 'INSERT INTO kv VALUES (?, ?)', ['big', big]);
    await q('alpha', 'INSERT INTO kv VALUES (?, ?)', ['small', small]);
    await q('alpha', 'INSERT INTO kv VALUES (?, ?)', ['blob', blob]);
    await q('alpha', 'INSERT INTO kv VALUES (?, ?)', ['bool', true]);
    await q('alpha', 'INSERT INTO kv VALUES (?, ?)', ['safe', 2 ** 53 - 1]);
    const r = await q('alpha', "SELECT k, v, typeof(v) FROM kv WHERE k IN ('big','small','blob','bool','safe') ORDER BY k");
    expect(r.body.rows).toEqual([
      ['big', big, 'integer'], ['blob', blob, 'blob'], ['bool', 1, 'integer'], ['safe', 2 ** 53 - 1, 'integer'], ['small', small, 'integer'],
    ]);
  });

  it('runs a batch as one transaction and reports the failing statementIndex', async () => {
    const ok = await t.req('POST', '/v1/tenants/alpha/batch', { statements: [
      { sql: 'INSERT INTO kv VALUES (?, ?)', params: ['b1', 1] },
      { sql: 'SELECT v FROM kv WHERE k = ?', params: ['b1'] },
    ] });
    expect(ok.body.results[1].rows).toEqual([[1]]);
    const bad = await t.req('POST', '/v1/tenants/alpha/batch', { statements: [
      { sql: 'INSERT INTO kv VALUES (?, ?)', params: ['b2', 1] },
      { sql: 'INSERT INTO kv VALUES (?, ?)', params: ['b1', 1] },
    ] });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'SQL_ERROR', statementIndex: 1, sqliteCode: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
    expect((await q('alpha', "SELECT count(*) FROM kv WHERE k = 'b2'")).body.rows).toEqual([[0]]);
  });

  it.each(['BEGIN', 'COMMIT', 'ROLLBACK', 'SAVEPOINT s', 'RELEASE s', 'END'])('refuses transaction control %s', async (sql) => {
    const r = await q('alpha', sql);
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('STATEMENT_NOT_ALLOWED');
  });

  it('refuses more than one statement in /query', async () => {
    const r = await q('alpha', "SELECT 1; DELETE FROM kv");
    expect(r.status).toBe(400);
    expect((await q('alpha', 'SELECT count(*) FROM kv')).body.rows[0][0]).toBeGreaterThan(0);
  });

  it('answers RESULT_TOO_LARGE past the result cap and keeps serving', async () => {
    const small = await testApp({ DOMICILE_MAX_RESULT_BYTES: '64KiB' });
    try {
      await small.req('POST', '/v1/tenants', { id: 'big', residency: 'moon' });
      const r = await small.req('POST', '/v1/tenants/big/query', { sql: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 100000) SELECT x, 'padding-padding-padding' FROM c" });
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('RESULT_TOO_LARGE');
      expect((await small.req('POST', '/v1/tenants/big/query', { sql: 'SELECT 1' })).body.rows).toEqual([[1]]);
    } finally {
      await small.close();
    }
  });

  it('answers QUOTA_EXCEEDED past DOMICILE_MAX_DB_BYTES and keeps what was written', async () => {
    const small = await testApp({ DOMICILE_MAX_DB_BYTES: '256KiB' });
    try {
      await small.req('POST', '/v1/tenants', { id: 'full', residency: 'moon' });
      await small.req('POST', '/v1/tenants/full/query', { sql: 'CREATE TABLE b (x)' });
      await small.req('POST', '/v1/tenants/full/query', { sql: 'INSERT INTO b VALUES (1)' });
      const r = await small.req('POST', '/v1/tenants/full/query', { sql: 'INSERT INTO b SELECT randomblob(1000000)' });
      expect(r.status).toBe(507);
      expect(r.body.error.code).toBe('QUOTA_EXCEEDED');
      expect((await small.req('POST', '/v1/tenants/full/query', { sql: 'SELECT count(*) FROM b' })).body.rows).toEqual([[1]]);
    } finally {
      await small.close();
    }
  });
});

describe('auth', () => {
  it('refuses missing, malformed and wrong tokens with UNAUTHORIZED', async () => {
    expect((await q('alpha', 'SELECT 1', undefined, null)).body.error.code).toBe('UNAUTHORIZED');
    expect((await q('alpha', 'SELECT 1', undefined, 'nope')).body.error.code).toBe('UNAUTHORIZED');
    expect((await t.req('GET', '/v1/tenants', undefined, 'not-the-admin-token-at-all')).status).toBe(401);
  });

  it('lets a tenant token use only its own tenant, never the admin plane', async () => {
    const a = await token('alpha', 'write');
    expect((await q('alpha', 'SELECT 1', undefined, a)).status).toBe(200);
    expect((await q('beta', 'SELECT 1', undefined, a)).body.error.code).toBe('FORBIDDEN');
    expect((await t.req('GET', '/v1/tenants', undefined, a)).body.error.code).toBe('FORBIDDEN');
    expect((await t.req('POST', '/v1/tenants', { id: 'evil', residency: 'moon' }, a)).body.error.code).toBe('FORBIDDEN');
    expect((await t.req('DELETE', '/v1/tenants/alpha', undefined, a)).body.error.code).toBe('FORBIDDEN');
  });

  it('lets a read token read but not write', async () => {
    const r = await token('beta', 'read');
    expect((await q('beta', 'SELECT count(*) FROM kv', undefined, r)).status).toBe(200);
    const w = await q('beta', "INSERT INTO kv VALUES ('x', 1)", undefined, r);
    expect(w.body.error.code).toBe('FORBIDDEN');
    const b = await t.req('POST', '/v1/tenants/beta/batch', { statements: [{ sql: 'SELECT 1' }, { sql: "DELETE FROM kv" }] }, r);
    expect(b.body.error.code).toBe('FORBIDDEN');
  });

  it('refuses tokens with another algorithm, an unknown key id, a bad signature, or expired', async () => {
    const good = await token('alpha', 'write');
    const [h, p] = good.split('.');
    expect((await q('alpha', 'SELECT 1', undefined, `${h}.${p}.`)).status).toBe(401);
    expect((await q('alpha', 'SELECT 1', undefined, `${h}.${p}.AAAA`)).status).toBe(401);
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', kid: 'k2' })).toString('base64url')}.${p}.`;
    expect((await q('alpha', 'SELECT 1', undefined, none)).status).toBe(401);
    const inc = (await t.rt.directory.get('alpha'))!.incarnation;
    const forged = await new SignJWT({ inc, scope: 'write' }).setProtectedHeader({ alg: 'HS256', kid: 'k9' }).setSubject('alpha').setIssuedAt().setExpirationTime('1h')
      .sign(new TextEncoder().encode('attacker-secret-attacker-secret-123'));
    expect((await q('alpha', 'SELECT 1', undefined, forged)).status).toBe(401);
    const expired = await new SignJWT({ inc, scope: 'write' }).setProtectedHeader({ alg: 'HS256', kid: 'k2' }).setSubject('alpha')
      .setIssuedAt(Math.floor(Date.now() / 1000) - 100).setExpirationTime(Math.floor(Date.now() / 1000) - 10)
      .sign(new TextEncoder().encode('new-secret-new-secret-new-secret-1234'));
    const e = await q('alpha', 'SELECT 1', undefined, expired);
    expect(e.body.error).toMatchObject({ code: 'UNAUTHORIZED', message: 'the token has expired' });
  });

  it('verifies tokens signed with an older key (rotation)', async () => {
    const inc = (await t.rt.directory.get('alpha'))!.incarnation;
    const old = await new SignJWT({ inc, scope: 'read' }).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).setSubject('alpha').setIssuedAt().setExpirationTime('1h')
      .sign(new TextEncoder().encode('old-secret-old-secret-old-secret-1234'));
    expect((await q('alpha', 'SELECT 1', undefined, old)).status).toBe(200);
  });

  it('revocation stops every earlier token, and new tokens work at once', async () => {
    const before = await token('beta', 'write');
    expect((await q('beta', 'SELECT 1', undefined, before)).status).toBe(200);
    expect((await t.req('POST', '/v1/tenants/beta/tokens/revoke')).status).toBe(200);
    expect((await q('beta', 'SELECT 1', undefined, before)).body.error.code).toBe('UNAUTHORIZED');
    const after = await token('beta', 'write');
    expect((await q('beta', 'SELECT 1', undefined, after)).status).toBe(200);
    const audit = await t.req('GET', '/v1/audit?tenant=beta&limit=1');
    expect(audit.body.events[0]).toMatchObject({ action: 'token.revoke', actor: 'alice' });
  });

  it('a re-created tenant id does not revive the old incarnation tokens', async () => {
    await t.req('POST', '/v1/tenants', { id: 'phoenix', residency: 'moon' });
    const old = await token('phoenix', 'write');
    await t.req('DELETE', '/v1/tenants/phoenix');
    await t.req('POST', '/v1/tenants', { id: 'phoenix', residency: 'moon' });
    const r = await q('phoenix', 'SELECT 1', undefined, old);
    expect(r.status).toBe(401);
    expect(r.body.error.code).toBe('UNAUTHORIZED');
  });
});

describe('token claims', () => {
  it('carries sub, inc, scope, iat, exp and kid, signed with the first key', async () => {
    const tok = await token('alpha', 'read', 120);
    const [h, p] = tok.split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')));
    expect(h).toMatchObject({ alg: 'HS256', kid: 'k2' });
    expect(p).toMatchObject({ sub: 'alpha', inc: (await t.rt.directory.get('alpha'))!.incarnation, scope: 'read', kid: 'k2' });
    expect(p.exp - p.iat).toBe(120);
  });
});
