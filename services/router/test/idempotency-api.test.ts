import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, testApp, type TestApp } from './harness.ts';

let t: TestApp;
const query = (tenant: string, body: unknown, key?: string, token?: string) =>
  t.req('POST', `/v1/tenants/${tenant}/query`, body, token, key === undefined ? {} : { 'idempotency-key': key });
const batch = (tenant: string, statements: unknown[], key?: string) =>
  t.req('POST', `/v1/tenants/${tenant}/batch`, { statements }, undefined, key === undefined ? {} : { 'idempotency-key': key });
const count = async (tenant: string) => (await query(tenant, { sql: 'SELECT count(*) FROM kv' })).body.rows[0][0];

beforeAll(async () => {
  t = await testApp();
  for (const id of ['alpha', 'beta']) {
    expect((await t.req('POST', '/v1/tenants', { id, residency: 'moon' })).status).toBe(201);
    expect((await query(id, { sql: 'CREATE TABLE kv (id INTEGER PRIMARY KEY AUTOINCREMENT, v)' })).status).toBe(200);
  }
});
afterAll(async () => t.close());

describe('Idempotency-Key on the data plane', () => {
  it('answers a retried /query from the record with Idempotent-Replayed: true, running it once', async () => {
    const before = await count('alpha');
    const body = { sql: 'INSERT INTO kv (v) VALUES (?) RETURNING id', params: ['q'] };
    const first = await query('alpha', body, 'order-1');
    expect(first.status).toBe(200);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const second = await query('alpha', body, 'order-1');
    expect(second.status).toBe(200);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body).toEqual(first.body);
    expect(await count('alpha')).toBe(before + 1);
  });

  it('answers a retried /batch from the record', async () => {
    const before = await count('alpha');
    const statements = [{ sql: "INSERT INTO kv (v) VALUES ('b1')" }, { sql: "INSERT INTO kv (v) VALUES ('b2')" }, { sql: 'SELECT count(*) AS n FROM kv' }];
    const first = await batch('alpha', statements, 'batch-1');
    const second = await batch('alpha', statements, 'batch-1');
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body).toEqual(first.body);
    expect(first.body.results[2].rows).toEqual([[before + 2]]);
    expect(await count('alpha')).toBe(before + 2);
  });

  it('refuses a key reused with another body with 422 IDEMPOTENCY_KEY_REUSED', async () => {
    expect((await query('alpha', { sql: "INSERT INTO kv (v) VALUES ('r1')" }, 'reused')).status).toBe(200);
    const before = await count('alpha');
    const r = await query('alpha', { sql: "INSERT INTO kv (v) VALUES ('r2')" }, 'reused');
    expect(r.status).toBe(422);
    expect(r.body.error).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED', field: 'Idempotency-Key' });
    expect((await batch('alpha', [{ sql: "INSERT INTO kv (v) VALUES ('r1')" }], 'reused')).body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await count('alpha')).toBe(before);
  });

  it('keeps keys per tenant: the same key on another tenant runs there', async () => {
    const body = { sql: "INSERT INTO kv (v) VALUES ('iso')" };
    const [a0, b0] = [await count('alpha'), await count('beta')];
    const a = await query('alpha', body, 'shared-key');
    const b = await query('beta', body, 'shared-key');
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(b.headers['idempotent-replayed']).toBeUndefined();
    expect([await count('alpha'), await count('beta')]).toEqual([a0 + 1, b0 + 1]);
    // A key with another body on the other tenant is not "reused" either.
    expect((await query('beta', { sql: "INSERT INTO kv (v) VALUES ('other')" }, 'order-1')).status).toBe(200);
  });

  it('refuses a malformed or repeated header with 400 BAD_REQUEST naming it, before running anything', async () => {
    const before = await count('alpha');
    const body = { sql: "INSERT INTO kv (v) VALUES ('bad')" };
    for (const key of ['has space', 'x'.repeat(256), '']) {
      const r = await query('alpha', body, key);
      expect(r.status, JSON.stringify(key)).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'BAD_REQUEST', field: 'Idempotency-Key' });
      expect(r.body.error.message).toContain('Idempotency-Key');
    }
    const repeated = await t.app.inject({
      method: 'POST', url: '/v1/tenants/alpha/batch', payload: { statements: [body] },
      headers: { authorization: `Bearer ${ADMIN}`, 'idempotency-key': ['one', 'two'] },
    });
    expect(repeated.statusCode).toBe(400);
    expect(JSON.parse(repeated.body).error.field).toBe('Idempotency-Key');
    expect((await query('alpha', body, 'x'.repeat(255))).status).toBe(200);
    expect(await count('alpha')).toBe(before + 1);
  });

  it('runs read-only requests with a key every time (nothing is recorded for them)', async () => {
    const read = { sql: 'SELECT count(*) FROM kv' };
    const first = await query('alpha', read, 'read-1');
    await query('alpha', { sql: "INSERT INTO kv (v) VALUES ('more')" });
    const second = await query('alpha', read, 'read-1');
    expect(second.headers['idempotent-replayed']).toBeUndefined();
    expect(second.body.rows[0][0]).toBe(first.body.rows[0][0] + 1);
  });
});
