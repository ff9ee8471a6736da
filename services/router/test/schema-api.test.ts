import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationChecksum } from '@domicile/shard';
import { testApp, type TestApp } from './harness.ts';

const M1 = { name: '0001_notes', sql: 'CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\nCREATE INDEX notes_body ON notes (body);' };
const M2 = { name: '0002_tags', sql: "CREATE TABLE tags (name TEXT PRIMARY KEY);\nINSERT INTO tags VALUES ('default');" };
const M3 = { name: '0003_invoices', sql: 'CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);' };

async function waitForJob(t: TestApp, jobId: string): Promise<any> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await t.req('GET', `/v1/schema/jobs/${jobId}`);
    expect(r.status).toBe(200);
    if (r.body.state === 'done') return r.body;
    if (Date.now() > deadline) throw new Error(`job ${jobId} did not finish: ${JSON.stringify(r.body)}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

async function apply(t: TestApp, body: unknown = {}): Promise<any> {
  const r = await t.req('POST', '/v1/schema/apply', body);
  expect(r.status).toBe(202);
  expect(r.body).toEqual({ jobId: expect.any(String) });
  return waitForJob(t, r.body.jobId);
}

async function tables(t: TestApp, tenant: string): Promise<string[]> {
  const r = await t.req('POST', `/v1/tenants/${tenant}/query`, { sql: "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE '\\_domicile\\_%' ESCAPE '\\' ORDER BY name" });
  expect(r.status).toBe(200);
  return r.body.rows.map((row: string[]) => row[0]);
}

async function appliedNames(t: TestApp, tenant: string): Promise<string[]> {
  const r = await t.req('POST', `/v1/tenants/${tenant}/query`, { sql: 'SELECT name FROM _domicile_migrations ORDER BY name' });
  return r.status === 200 ? r.body.rows.map((row: string[]) => row[0]) : [];
}

describe('PUT/GET /v1/schema: the append-only migration list', () => {
  let t: TestApp;
  beforeAll(async () => { t = await testApp(); });
  afterAll(async () => t.close());

  it('starts empty, stores a list and answers it with checksums in order', async () => {
    expect((await t.req('GET', '/v1/schema')).body).toEqual({ migrations: [] });
    const put = await t.req('PUT', '/v1/schema', { migrations: [M1, M2] });
    expect(put.status).toBe(200);
    expect(put.body.added).toEqual(['0001_notes', '0002_tags']);
    expect(put.body.migrations.map((m: { checksum: string }) => m.checksum)).toEqual([migrationChecksum(M1.sql), migrationChecksum(M2.sql)]);
    const got = await t.req('GET', '/v1/schema');
    expect(got.body.migrations).toEqual([
      { ...M1, checksum: migrationChecksum(M1.sql), storedAt: expect.any(String) },
      { ...M2, checksum: migrationChecksum(M2.sql), storedAt: expect.any(String) },
    ]);
  });

  it('treats the same list as a no-op and appends only new migrations at the end', async () => {
    expect((await t.req('PUT', '/v1/schema', { migrations: [M1, M2] })).body.added).toEqual([]);
    expect((await t.req('PUT', '/v1/schema', { migrations: [M1, M2, M3] })).body.added).toEqual(['0003_invoices']);
    expect((await t.req('GET', '/v1/schema')).body.migrations.map((m: { name: string }) => m.name)).toEqual(['0001_notes', '0002_tags', '0003_invoices']);
  });

  it.each([
    ['changed SQL of a stored migration', [M1, { ...M2, sql: M2.sql.replace('default', 'other') }, M3], '0002_tags', 'changed'],
    ['a trailing newline added to a stored migration', [M1, M2, { ...M3, sql: `${M3.sql}\n` }], '0003_invoices', 'changed'],
    ['a stored migration left out', [M1, M3], '0002_tags', 'missing'],
    ['a new migration inserted before a stored one', [M1, M2, { name: '0003', sql: 'SELECT 1' }], '0003_invoices', 'missing'],
  ])('refuses %s with 409 SCHEMA_CONFLICT naming it, and stores nothing', async (_what, migrations, name, reason) => {
    const r = await t.req('PUT', '/v1/schema', { migrations });
    expect(r.status).toBe(409);
    expect(r.body.error).toMatchObject({ code: 'SCHEMA_CONFLICT', name, reason });
    expect((await t.req('GET', '/v1/schema')).body.migrations).toHaveLength(3);
  });

  it.each([
    ['a name without a number', { migrations: [M1, M2, M3, { name: 'cleanup', sql: 'SELECT 1' }] }],
    ['numbers out of order', { migrations: [M1, M2, M3, { name: '0002_again', sql: 'SELECT 1' }] }],
    ['an unknown field', { migrations: [M1], force: true }],
    ['a migration without sql', { migrations: [{ name: '0001_notes' }] }],
    ['empty sql', { migrations: [M1, M2, M3, { name: '0004', sql: '' }] }],
  ])('refuses %s with 400 BAD_REQUEST', async (_what, body) => {
    const r = await t.req('PUT', '/v1/schema', body);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('BAD_REQUEST');
  });

  it('is admin only', async () => {
    expect((await t.req('GET', '/v1/schema', undefined, null)).status).toBe(401);
    expect((await t.req('PUT', '/v1/schema', { migrations: [] }, 'not-a-token')).status).toBe(401);
    await t.req('POST', '/v1/tenants', { id: 'plain', residency: 'moon' });
    const token = (await t.req('POST', '/v1/tenants/plain/tokens', { scope: 'write' })).body.token;
    expect((await t.req('POST', '/v1/schema/apply', {}, token)).body.error.code).toBe('FORBIDDEN');
    expect((await t.req('GET', '/v1/schema', undefined, token)).body.error.code).toBe('FORBIDDEN');
  });
});

describe('POST /v1/schema/apply and GET /v1/schema/jobs/:id', () => {
  let t: TestApp;
  const fleet = ['t-a', 't-b', 't-c', 't-d', 't-e'];
  beforeAll(async () => {
    t = await testApp();
    for (const id of fleet) expect((await t.req('POST', '/v1/tenants', { id, residency: 'anywhere', region: id === 't-e' ? 'moon-base' : 'mars-north' })).status).toBe(201);
    // t-c already has a table the third migration wants to create: only it fails there.
    await t.req('POST', '/v1/tenants/t-c/query', { sql: 'CREATE TABLE invoices (legacy TEXT)' });
  });
  afterAll(async () => t.close());

  it('applies the list to every tenant, reporting progress to done', async () => {
    await t.req('PUT', '/v1/schema', { migrations: [M1, M2] });
    const job = await apply(t, { concurrency: 2 });
    expect(job).toMatchObject({ state: 'done', migrations: 2, total: 5, done: 5, applied: 5, upToDate: 0, failed: 0, migrationsApplied: 10, failures: [], concurrency: 2 });
    expect(Date.parse(job.finishedAt)).toBeGreaterThanOrEqual(Date.parse(job.startedAt));
    for (const id of fleet) expect(await appliedNames(t, id)).toEqual(['0001_notes', '0002_tags']);
    expect(await tables(t, 't-e')).toEqual(['notes', 'tags']);
  });

  it('re-running applies nothing', async () => {
    const job = await apply(t);
    expect(job).toMatchObject({ total: 5, done: 5, applied: 0, upToDate: 5, failed: 0, migrationsApplied: 0 });
  });

  it('reports a tenant whose migration fails, with the migration and the code, and migrates the others', async () => {
    await t.req('PUT', '/v1/schema', { migrations: [M1, M2, M3] });
    const job = await apply(t, { concurrency: 3 });
    expect(job).toMatchObject({ total: 5, done: 5, applied: 4, failed: 1, migrationsApplied: 4 });
    expect(job.failures).toEqual([{ tenant: 't-c', migration: '0003_invoices', code: 'SQL_ERROR', sqliteCode: 'SQLITE_ERROR', message: expect.stringContaining('invoices') }]);
    expect(await appliedNames(t, 't-c')).toEqual(['0001_notes', '0002_tags']);
    expect(await appliedNames(t, 't-a')).toEqual(['0001_notes', '0002_tags', '0003_invoices']);
    // After the tenant's data is fixed, a re-run finishes just that tenant.
    await t.req('POST', '/v1/tenants/t-c/query', { sql: 'DROP TABLE invoices' });
    expect(await apply(t)).toMatchObject({ applied: 1, upToDate: 4, failed: 0, migrationsApplied: 1 });
  });

  it('applies to named tenants only, and reports a named tenant that does not exist', async () => {
    await t.req('PUT', '/v1/schema', { migrations: [M1, M2, M3, { name: '0004_flags', sql: 'CREATE TABLE flags (k TEXT);' }] });
    const job = await apply(t, { tenants: ['t-a', 't-b', 'ghost', 't-a'] });
    expect(job).toMatchObject({ total: 3, done: 3, applied: 2, failed: 1 });
    expect(job.failures).toEqual([{ tenant: 'ghost', migration: null, code: 'TENANT_NOT_FOUND', message: expect.any(String) }]);
    expect(await appliedNames(t, 't-a')).toContain('0004_flags');
    expect(await appliedNames(t, 't-d')).not.toContain('0004_flags');
  });

  it('refuses bad apply requests', async () => {
    expect((await t.req('POST', '/v1/schema/apply', { concurrency: 0 })).body.error.code).toBe('BAD_REQUEST');
    expect((await t.req('POST', '/v1/schema/apply', { concurrency: 65 })).body.error.code).toBe('BAD_REQUEST');
    expect((await t.req('POST', '/v1/schema/apply', { tenants: ['Bad/../id'] })).body.error.code).toBe('INVALID_TENANT_ID');
    expect((await t.req('POST', '/v1/schema/apply', { everyone: true })).body.error.code).toBe('BAD_REQUEST');
    const unknown = await t.req('GET', '/v1/schema/jobs/no-such-job');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('NOT_FOUND');
  });

  it('gives a tenant created later every stored migration before it serves', async () => {
    const r = await t.req('POST', '/v1/tenants', { id: 'latecomer', residency: 'moon' });
    expect(r.status).toBe(201);
    expect(await appliedNames(t, 'latecomer')).toEqual(['0001_notes', '0002_tags', '0003_invoices', '0004_flags']);
    expect(await tables(t, 'latecomer')).toEqual(['flags', 'invoices', 'notes', 'tags']);
    expect((await t.req('POST', '/v1/tenants/latecomer/query', { sql: 'SELECT name FROM tags' })).body.rows).toEqual([['default']]);
  });

  it('records schema changes and jobs in the audit log', async () => {
    const events = (await t.req('GET', '/v1/audit?limit=100')).body.events as { action: string; actor: string; details: Record<string, unknown> }[];
    expect(events.filter((e) => e.action === 'schema.put').map((e) => e.details.added)).toContainEqual(['0003_invoices']);
    expect(events.some((e) => e.action === 'schema.apply' && e.actor === 'alice')).toBe(true);
  });
});

describe('a stored migration that fails on a fresh database', () => {
  let t: TestApp;
  beforeAll(async () => { t = await testApp(); });
  afterAll(async () => t.close());

  it('fails the creation with the migration named and leaves no tenant behind', async () => {
    await t.req('PUT', '/v1/schema', { migrations: [M1, { name: '0002_needs_data', sql: 'INSERT INTO notes (id, body) SELECT 1, body FROM notes_archive;' }] });
    const r = await t.req('POST', '/v1/tenants', { id: 'fresh', residency: 'moon' });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 'SQL_ERROR', migration: '0002_needs_data' });
    expect((await t.req('GET', '/v1/tenants/fresh')).status).toBe(404);
  });
});
