import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ADMIN, OPS, testApp, type TestApp } from './harness.ts';

let t: TestApp;
beforeAll(async () => { t = await testApp(); });
afterAll(async () => t.close());

describe('tenant placement follows the policy', () => {
  it('places a tenant in its residency default region with epoch 1', async () => {
    const r = await t.req('POST', '/v1/tenants', { id: 'placed-default', residency: 'mars' });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ id: 'placed-default', residency: 'mars', region: 'mars-north', node: 'mars-north-1', epoch: 1, state: 'active', durability: 'async' });
    expect(Date.parse(r.body.createdAt)).not.toBeNaN();
  });

  it('honours an explicit region of the residency and a durability', async () => {
    const r = await t.req('POST', '/v1/tenants', { id: 'placed-south', residency: 'mars', region: 'mars-south', durability: 'sync' });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ region: 'mars-south', durability: 'sync' });
  });

  it.each([
    [{ id: 'p1', residency: 'venus' }, 'unknown-residency'],
    [{ id: 'p2', residency: 'mars', region: 'moon-base' }, 'residency-regions'],
    [{ id: 'p3', residency: 'mars', region: 'pluto' }, 'unknown-region'],
    [{ id: 'pinned-co', residency: 'moon' }, 'pin-residency'],
    [{ id: 'pinned-co', residency: 'mars', region: 'mars-north' }, 'pinned'],
  ])('refuses %j with POLICY_VIOLATION (%s) and creates nothing', async (body, rule) => {
    const r = await t.req('POST', '/v1/tenants', body);
    expect(r.status).toBe(422);
    expect(r.body.error).toMatchObject({ code: 'POLICY_VIOLATION', rule });
    expect((await t.req('GET', `/v1/tenants/${body.id}`)).status).toBe(404);
  });

  it('creates a pinned tenant in its pin', async () => {
    const r = await t.req('POST', '/v1/tenants', { id: 'pinned-co', residency: 'mars' });
    expect(r.status).toBe(201);
    expect(r.body.region).toBe('mars-south');
  });

  it('refuses a second tenant with the same id with TENANT_EXISTS', async () => {
    await t.req('POST', '/v1/tenants', { id: 'dup', residency: 'moon' });
    const r = await t.req('POST', '/v1/tenants', { id: 'dup', residency: 'moon' });
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('TENANT_EXISTS');
  });

  it.each(['../etc', 'UPPER', '-leading', 'a'.repeat(64), 'with space', 'nul\u0000byte', 'dot.dot', ''])(
    'refuses tenant id %j with INVALID_TENANT_ID', async (id) => {
      const r = await t.req('POST', '/v1/tenants', { id, residency: 'moon' });
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('INVALID_TENANT_ID');
    });

  it('refuses unknown fields and wrong types with BAD_REQUEST', async () => {
    expect((await t.req('POST', '/v1/tenants', { id: 'x1', residency: 'moon', regoin: 'moon-base' })).body.error.code).toBe('BAD_REQUEST');
    expect((await t.req('POST', '/v1/tenants', { id: 'x1', residency: 'moon', durability: 'maybe' })).body.error.code).toBe('BAD_REQUEST');
    expect((await t.req('POST', '/v1/tenants', { id: 7, residency: 'moon' })).body.error.code).toBe('BAD_REQUEST');
  });

  it('lists tenants in pages with filters and a cursor', async () => {
    for (let i = 0; i < 5; i++) await t.req('POST', '/v1/tenants', { id: `list-${i}`, residency: 'anywhere', region: 'moon-base' });
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const r: { body: { tenants: { id: string; region: string }[]; nextCursor: string | null } } = await t.req('GET', `/v1/tenants?region=moon-base&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.body.tenants.length).toBeLessThanOrEqual(2);
      expect(r.body.tenants.every((x) => x.region === 'moon-base')).toBe(true);
      ids.push(...r.body.tenants.map((x) => x.id));
      cursor = r.body.nextCursor;
    } while (cursor);
    expect(ids).toEqual(expect.arrayContaining(['list-0', 'list-1', 'list-2', 'list-3', 'list-4']));
    expect((await t.req('GET', '/v1/tenants?limit=0')).body.error.code).toBe('BAD_REQUEST');
    expect((await t.req('GET', '/v1/tenants?cursor=garbage!')).body.error.code).toBe('BAD_REQUEST');
  });

  it('erases a tenant: files gone, record gone, audit kept with the actor', async () => {
    await t.req('POST', '/v1/tenants', { id: 'to-erase', residency: 'moon' });
    await t.req('POST', '/v1/tenants/to-erase/query', { sql: 'CREATE TABLE t (x)' });
    const r = await t.req('DELETE', '/v1/tenants/to-erase', undefined, OPS);
    expect(r.status).toBe(200);
    expect(r.body.erased.files).toBeGreaterThanOrEqual(1);
    expect((await t.req('GET', '/v1/tenants/to-erase')).body.error.code).toBe('TENANT_NOT_FOUND');
    expect((await t.req('DELETE', '/v1/tenants/to-erase')).status).toBe(404);
    const audit = await t.req('GET', '/v1/audit?tenant=to-erase');
    expect(audit.body.events.map((e: { action: string }) => e.action)).toEqual(['tenant.erase', 'tenant.create']);
    expect(audit.body.events[0].actor).toBe('ops');
    expect(audit.body.events[1].actor).toBe('alice');
  });
});

describe('creation backpressure (docs/http-api.md, "Creation storms")', () => {
  it('answers 503 OVERLOADED with Retry-After and the backlog, and creates nothing, while replication cannot take another tenant', async () => {
    const rep = t.rt.replicator!;
    const admit = vi.spyOn(rep, 'admitCreation').mockResolvedValue(false);
    try {
      const r = await t.req('POST', '/v1/tenants', { id: 'held-back', residency: 'mars' });
      expect(r.status).toBe(503);
      expect(r.body.error).toMatchObject({ code: 'OVERLOADED', replicationBacklog: expect.any(Number) });
      expect(r.headers['retry-after']).toBe('1');
      expect(admit).toHaveBeenCalledOnce();
      expect((await t.req('GET', '/v1/tenants/held-back')).status).toBe(404);
    } finally {
      admit.mockRestore();
    }
    // Admitted again: the same id is free.
    expect((await t.req('POST', '/v1/tenants', { id: 'held-back', residency: 'mars' })).status).toBe(201);
  });
});

describe('errors are coded JSON', () => {
  it('answers malformed JSON with BAD_REQUEST', async () => {
    const r = await t.req('POST', '/v1/tenants', '{"id": "x",', ADMIN, { 'content-type': 'application/json' });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('BAD_REQUEST');
    expect(r.headers['content-type']).toMatch(/^application\/json/);
  });

  it('answers a body that is not application/json with BAD_REQUEST asking for JSON', async () => {
    const r = await t.req('POST', '/v1/tenants', '{"id":"plain","residency":"moon"}', ADMIN, { 'content-type': 'text/plain' });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 'BAD_REQUEST', message: 'send the body as application/json' });
    expect((await t.req('GET', '/v1/tenants/plain')).status).toBe(404);
  });

  it('answers an oversized body with PAYLOAD_TOO_LARGE', async () => {
    const small = await testApp({ DOMICILE_MAX_BODY_BYTES: '1KiB' });
    try {
      const r = await small.req('POST', '/v1/tenants', { id: 'big', residency: 'moon', pad: 'x'.repeat(4096) });
      expect(r.status).toBe(413);
      expect(r.body.error.code).toBe('PAYLOAD_TOO_LARGE');
    } finally {
      await small.close();
    }
  });

  it('answers unknown routes with NOT_FOUND and wrong methods with METHOD_NOT_ALLOWED', async () => {
    expect((await t.req('GET', '/v1/nothing')).body.error.code).toBe('NOT_FOUND');
    const r = await t.req('PUT', '/v1/tenants/abc');
    expect(r.status).toBe(405);
    expect(r.body.error.code).toBe('METHOD_NOT_ALLOWED');
  });

  it('marks 503 answers with Retry-After', async () => {
    t.rt.setReady(false);
    try {
      const r = await t.req('GET', '/readyz');
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBe('1');
    } finally {
      t.rt.setReady(true);
    }
  });
});

describe('operations endpoints', () => {
  it('serves health, readiness, status aggregates without tenant ids, and metrics without tenant labels', async () => {
    expect((await t.req('GET', '/healthz', undefined, null)).status).toBe(200);
    expect((await t.req('GET', '/readyz', undefined, null)).status).toBe(200);
    const status = await t.req('GET', '/v1/status', undefined, null);
    expect(status.body.regions.map((r: { name: string }) => r.name)).toEqual(['mars-north', 'mars-south', 'moon-base']);
    expect(JSON.stringify(status.body)).not.toContain('placed-default');
    const metrics = await t.req('GET', '/metrics', undefined, null);
    expect(metrics.body).toContain('domicile_http_requests_total');
    expect(metrics.body).toContain('domicile_open_shards');
    expect(metrics.body).toContain('route="/v1/tenants/:id"');
    expect(metrics.body).not.toContain('placed-default');
    const page = await t.req('GET', '/', undefined, null);
    expect(page.headers['content-type']).toMatch(/text\/html/);
  });

  it('shows the policy to admins only', async () => {
    expect((await t.req('GET', '/v1/policy')).body.hash).toMatch(/^[0-9a-f]{64}$/);
    expect((await t.req('GET', '/v1/policy', undefined, null)).status).toBe(401);
  });
});
