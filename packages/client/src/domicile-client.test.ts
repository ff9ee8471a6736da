import { afterEach, describe, expect, it } from 'vitest';
import { DomicileClient, isUnreachable, type MoveStatus, type Tenant } from './index.ts';
import { startCannedServer, type CannedServer } from './testing/canned-server.ts';

const TOKEN = 'admin-secret';
const servers: CannedServer[] = [];

async function server(...args: Parameters<typeof startCannedServer>): Promise<CannedServer> {
  const s = await startCannedServer(...args);
  servers.push(s);
  return s;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function tenant(id: string, region = 'eu-west'): Tenant {
  return { id, residency: 'eu', region, node: `${region}-1`, epoch: 1, state: 'active', durability: 'async', createdAt: '2025-01-01T00:00:00.000Z' };
}

async function caught(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('error mapping', () => {
  it('turns a contract error body into a DomicileError with its code, message, details and HTTP status', async () => {
    const s = await server({
      'POST /v1/tenants': { status: 409, json: { error: { code: 'TENANT_EXISTS', message: 'tenant acme exists', tenant: 'acme' } } },
    });
    const err = await caught(new DomicileClient({ url: s.url, token: TOKEN }).createTenant({ id: 'acme', residency: 'eu' }));
    expect(err.name).toBe('DomicileClientError');
    expect(err.code).toBe('TENANT_EXISTS');
    expect(err.message).toBe('tenant acme exists');
    expect(err.status).toBe(409);
    expect(err.details).toEqual({ tenant: 'acme' });
    expect(s.requests[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(s.requests[0]!.json).toEqual({ id: 'acme', residency: 'eu' });
  });

  it('keeps statementIndex and sqliteCode of a failed batch', async () => {
    const s = await server({
      'POST /v1/tenants/acme/batch': {
        status: 400,
        json: { error: { code: 'SQL_ERROR', message: 'UNIQUE constraint failed', statementIndex: 1, sqliteCode: 'SQLITE_CONSTRAINT_UNIQUE' } },
      },
    });
    const err = await caught(new DomicileClient({ url: s.url, token: TOKEN }).batch('acme', [{ sql: 'select 1' }, { sql: 'insert ...' }]));
    expect(err.code).toBe('SQL_ERROR');
    expect(err.details).toEqual({ statementIndex: 1, sqliteCode: 'SQLITE_CONSTRAINT_UNIQUE' });
  });

  it('maps an unknown code to INTERNAL and keeps the original code in details', async () => {
    const s = await server({ 'GET /v1/status': { status: 418, json: { error: { code: 'TEAPOT', message: 'short and stout' } } } });
    const err = await caught(new DomicileClient({ url: s.url }).status());
    expect(err.code).toBe('INTERNAL');
    expect(err.message).toBe('short and stout');
    expect(err.details.serverCode).toBe('TEAPOT');
    expect(err.status).toBe(418);
  });

  it('maps a non-JSON gateway answer to NODE_UNAVAILABLE with the status, not to "unreachable"', async () => {
    const s = await server({ 'GET /v1/cluster': { status: 502, body: '<html>bad gateway</html>', headers: { 'retry-after': '7' } } });
    const err = await caught(new DomicileClient({ url: s.url, token: TOKEN }).cluster());
    expect(err.code).toBe('NODE_UNAVAILABLE');
    expect(err.status).toBe(502);
    expect(err.details.retryAfter).toBe(7);
    expect(isUnreachable(err)).toBe(false);
  });

  it('carries Retry-After of a 503 into details.retryAfter', async () => {
    const s = await server({
      'POST /v1/tenants/acme/query': { status: 503, headers: { 'retry-after': '3' }, json: { error: { code: 'TENANT_MOVING', message: 'moving' } } },
    });
    const err = await caught(new DomicileClient({ url: s.url, token: TOKEN }).query('acme', 'select 1'));
    expect(err.code).toBe('TENANT_MOVING');
    expect(err.retryAfterSeconds).toBe(3);
  });
});

describe('network failures', () => {
  it('reports a refused connection as NODE_UNAVAILABLE with the url and the cause', async () => {
    const s = await server();
    const url = s.url;
    await s.close();
    servers.pop();
    const err = await caught(new DomicileClient({ url, token: TOKEN }).getTenant('acme'));
    expect(err.code).toBe('NODE_UNAVAILABLE');
    expect(err.status).toBeUndefined();
    expect(err.details.url).toBe(`${url}/v1/tenants/acme`);
    expect(err.message).toContain('connection refused');
    expect(err.cause).toBeDefined();
    expect(isUnreachable(err)).toBe(true);
  });

  it('gives up after timeoutMs with NODE_UNAVAILABLE', async () => {
    const s = await server({ 'GET /v1/status': () => new Promise(() => undefined) });
    const err = await caught(new DomicileClient({ url: s.url, timeoutMs: 100 }).status());
    expect(err.code).toBe('NODE_UNAVAILABLE');
    expect(err.details.timeoutMs).toBe(100);
  });
});

describe('redirects', () => {
  it('re-sends method, body and Authorization to the 307 Location and caches the tenant on the owner', async () => {
    const owner = await server({ 'POST /v1/tenants/acme/query': { json: { columns: ['x'], columnTypes: [''], rows: [[1]], rowsAffected: 0, lastInsertRowid: null } } });
    const entry = await server({
      'POST /v1/tenants/acme/query': {
        status: 307,
        headers: { location: `${owner.url}/v1/tenants/acme/query`, 'domicile-node': 'eu-central-1', 'domicile-region': 'eu-central', 'domicile-epoch': '4' },
      },
    });
    const c = new DomicileClient({ url: entry.url, token: TOKEN });
    const r = await c.query('acme', 'select ?', [1], { idempotencyKey: 'k1' });
    expect(r.rows).toEqual([[1]]);
    expect(owner.requests).toHaveLength(1);
    const seen = owner.requests[0]!;
    expect(seen.method).toBe('POST');
    expect(seen.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(seen.headers['idempotency-key']).toBe('k1');
    expect(seen.json).toEqual({ sql: 'select ?', params: [1] });
    expect(c.cachedRoute('acme')).toBe(owner.url);

    await c.query('acme', 'select 2');
    expect(entry.requests).toHaveLength(1);
    expect(owner.requests).toHaveLength(2);
    // Other tenants still go to the configured node.
    await caught(c.query('other', 'select 1'));
    expect(entry.requests).toHaveLength(2);
  });

  it('drops the cached route when the owner answers an error, and goes back to the configured node', async () => {
    const owner = await server({ 'GET /v1/tenants/acme': { json: tenant('acme', 'eu-central') } });
    const entry = await server({
      'GET /v1/tenants/acme': { status: 307, headers: { location: `${owner.url}/v1/tenants/acme`, 'domicile-node': 'n2' } },
    });
    const c = new DomicileClient({ url: entry.url, token: TOKEN });
    await c.getTenant('acme');
    expect(c.cachedRoute('acme')).toBe(owner.url);
    owner.route('GET /v1/tenants/acme', { status: 503, json: { error: { code: 'TENANT_MOVING', message: 'moving' } } });
    expect((await caught(c.getTenant('acme'))).code).toBe('TENANT_MOVING');
    expect(c.cachedRoute('acme')).toBeUndefined();
    entry.route('GET /v1/tenants/acme', { json: tenant('acme', 'us-east') });
    expect((await c.getTenant('acme')).region).toBe('us-east');
  });

  it('falls back to the configured node when the cached owner refuses connections', async () => {
    const owner = await server({ 'GET /v1/tenants/acme': { json: tenant('acme', 'eu-central') } });
    const entry = await server({
      'GET /v1/tenants/acme': { status: 307, headers: { location: `${owner.url}/v1/tenants/acme`, 'domicile-node': 'n2' } },
    });
    const c = new DomicileClient({ url: entry.url, token: TOKEN });
    await c.getTenant('acme');
    await owner.close();
    servers.splice(servers.indexOf(owner), 1);
    entry.route('GET /v1/tenants/acme', { json: tenant('acme', 'eu-west') });
    expect((await c.getTenant('acme')).region).toBe('eu-west');
    expect(c.cachedRoute('acme')).toBeUndefined();
  });

  it('follows at most 3 hops, then fails with NODE_UNAVAILABLE', async () => {
    const loop = await server();
    loop.route('GET /v1/tenants/acme', { status: 307, headers: { location: '/v1/tenants/acme', 'domicile-node': 'n1' } });
    const c = new DomicileClient({ url: loop.url, token: TOKEN });
    const err = await caught(c.getTenant('acme'));
    expect(err.code).toBe('NODE_UNAVAILABLE');
    expect(err.status).toBe(307);
    expect(err.details.redirects).toBe(3);
    expect(loop.requests).toHaveLength(4);
    expect(c.cachedRoute('acme')).toBeUndefined();
  });

  it('does not send Authorization across origins on a redirect Domicile did not make', async () => {
    const elsewhere = await server({ 'GET /v1/tenants/acme': { json: tenant('acme') } });
    const entry = await server({ 'GET /v1/tenants/acme': { status: 307, headers: { location: `${elsewhere.url}/v1/tenants/acme` } } });
    const c = new DomicileClient({ url: entry.url, token: TOKEN });
    await c.getTenant('acme');
    expect(elsewhere.requests[0]!.headers.authorization).toBeUndefined();
    expect(c.cachedRoute('acme')).toBeUndefined();
  });

  it('keeps a path prefix of the owner in the cached route', async () => {
    const owner = await server({ 'GET /node2/v1/tenants/acme': { json: tenant('acme') } });
    const entry = await server({
      'GET /v1/tenants/acme': { status: 307, headers: { location: `${owner.url}/node2/v1/tenants/acme`, 'domicile-node': 'n2' } },
    });
    const c = new DomicileClient({ url: entry.url, token: TOKEN });
    await c.getTenant('acme');
    expect(c.cachedRoute('acme')).toBe(`${owner.url}/node2`);
  });
});

describe('paging', () => {
  it('allTenants follows nextCursor with the same filters until the last page', async () => {
    const s = await server({
      'GET /v1/tenants': (req) => {
        const cursor = req.query.get('cursor');
        if (cursor === null) return { json: { tenants: [tenant('a'), tenant('b')], nextCursor: 'c1' } };
        if (cursor === 'c1') return { json: { tenants: [tenant('c')], nextCursor: 'c2' } };
        return { json: { tenants: [tenant('d')], nextCursor: null } };
      },
    });
    const c = new DomicileClient({ url: s.url, token: TOKEN });
    const ids: string[] = [];
    for await (const t of c.allTenants({ region: 'eu-west', limit: 2 })) ids.push(t.id);
    expect(ids).toEqual(['a', 'b', 'c', 'd']);
    expect(s.requests.map((r) => [r.query.get('region'), r.query.get('limit'), r.query.get('cursor')])).toEqual([
      ['eu-west', '2', null], ['eu-west', '2', 'c1'], ['eu-west', '2', 'c2'],
    ]);
  });

  it('refuses to loop forever on a repeated cursor', async () => {
    const s = await server({ 'GET /v1/tenants': { json: { tenants: [tenant('a')], nextCursor: 'same' } } });
    const c = new DomicileClient({ url: s.url, token: TOKEN });
    const err = await caught((async () => { for await (const _ of c.allTenants()) { /* drain */ } })());
    expect(err.code).toBe('INTERNAL');
    expect(s.requests).toHaveLength(2);
  });
});

describe('moves', () => {
  function moveStatus(phase: MoveStatus['phase'], extra: Partial<MoveStatus> = {}): MoveStatus {
    return { moveId: 'm1', tenant: 'acme', from: 'eu-west', to: 'eu-central', node: 'n2', phase, bytesCopied: 0, bytesTotal: 100, writePauseMs: null, ...extra };
  }

  it('waitForMove polls until done and reports every phase', async () => {
    const phases: MoveStatus['phase'][] = ['pending', 'copying', 'fenced', 'done'];
    let i = 0;
    const s = await server({ 'GET /v1/moves/m1': () => ({ json: moveStatus(phases[Math.min(i++, phases.length - 1)]!, { writePauseMs: 12 }) }) });
    const c = new DomicileClient({ url: s.url, token: TOKEN, pollIntervalMs: 5 });
    const seen: string[] = [];
    const final = await c.waitForMove('m1', (st) => seen.push(st.phase));
    expect(final.phase).toBe('done');
    expect(seen).toEqual(phases);
  });

  it('waitForMove rejects with the aborted move\'s own error code and the status in details.move', async () => {
    const s = await server({
      'GET /v1/moves/m1': { json: moveStatus('aborted', { error: { code: 'POLICY_MISMATCH', message: 'nodes disagree' } }) },
    });
    const err = await caught(new DomicileClient({ url: s.url, token: TOKEN }).waitForMove('m1'));
    expect(err.code).toBe('POLICY_MISMATCH');
    expect(err.status).toBe(409);
    expect(err.details.move.phase).toBe('aborted');
  });
});

describe('requests', () => {
  it('sends each call to its contract route', async () => {
    const s = await server();
    const c = new DomicileClient({ url: `${s.url}/`, token: TOKEN });
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['DELETE /v1/tenants/acme', () => c.eraseTenant('acme')],
      ['POST /v1/tenants/acme/tokens', () => c.createToken('acme', { scope: 'read', ttlSeconds: 60 })],
      ['POST /v1/tenants/acme/tokens/revoke', () => c.revokeTokens('acme')],
      ['POST /v1/tenants/acme/move', () => c.moveTenant('acme', { to: 'eu-central' })],
      ['POST /v1/tenants/acme/restore', () => c.restore('acme', { at: new Date('2025-01-02T03:04:05Z'), as: 'acme-copy' })],
      ['GET /v1/tenants/acme/backups', () => c.backups('acme')],
      ['GET /v1/audit', () => c.audit({ tenant: 'acme' })],
      ['GET /v1/audit/residency', () => c.residencyAudit()],
      ['GET /v1/policy', () => c.policy()],
      ['GET /healthz', () => c.health()],
    ];
    for (const [key] of calls) s.route(key, { json: { ok: true } });
    for (const [, call] of calls) await call();
    expect(s.requests.map((r) => `${r.method} ${r.path}`)).toEqual(calls.map(([k]) => k));
    expect(s.requests[1]!.json).toEqual({ scope: 'read', ttlSeconds: 60 });
    expect(s.requests[4]!.json).toEqual({ at: '2025-01-02T03:04:05.000Z', as: 'acme-copy' });
    expect(s.requests[6]!.query.get('tenant')).toBe('acme');
  });

  it('encodes native bigint, blob and boolean params on the wire', async () => {
    const s = await server({ 'POST /v1/tenants/acme/query': { json: { columns: [], columnTypes: [], rows: [], rowsAffected: 1, lastInsertRowid: 1 } } });
    await new DomicileClient({ url: s.url, token: TOKEN }).query('acme', 'insert into t values (:a, :b, :c)', {
      a: 9223372036854775807n, b: new Uint8Array([0, 255]), c: true,
    });
    expect(s.requests[0]!.json).toEqual({ sql: 'insert into t values (:a, :b, :c)', params: { a: { int: '9223372036854775807' }, b: { base64: 'AP8=' }, c: true } });
  });

  it('refuses a url that is not http(s)', () => {
    expect(() => new DomicileClient({ url: 'ftp://x' })).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });
});
