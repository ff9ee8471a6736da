// HTTPS between clients and nodes, and between nodes (DESIGN §10, issue 5):
// two cluster node processes serve https with DOMICILE_TLS_CERT/KEY and trust
// the test CA through NODE_EXTRA_CA_CERTS. A tenant created through the node
// of the other region is relayed over https; queries relay over https; a
// redirect points at the owner's https URL; plain http to a TLS node fails.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCertificate, startDomicile, startRedisServer, testRequest, type DomicileServer, type RedisServer, type TestTls } from '@domicile/testkit';

const ADMIN = 'tls-cluster-admin-token-0123456789';
const POLICY = `version: 1
regions:
  north: { jurisdiction: a }
  south: { jurisdiction: b }
residencies:
  n: { regions: [north] }
  closed: { regions: [north], transit: redirect }
`;

describe('a cluster over HTTPS', () => {
  const scratch = mkdtempSync(path.join(tmpdir(), 'domicile-tls-cluster-'));
  let tls: TestTls;
  let ca: string;
  let redis: RedisServer;
  const nodes: Record<string, DomicileServer> = {};

  beforeAll(async () => {
    tls = makeTestCertificate(scratch);
    ca = (await import('node:fs')).readFileSync(tls.caFile, 'utf8');
    const policy = path.join(scratch, 'policy.yaml');
    writeFileSync(policy, POLICY);
    redis = await startRedisServer();
    for (const [id, region] of [['north-1', 'north'], ['south-1', 'south']] as const) {
      nodes[id] = await startDomicile({
        tls,
        env: {
          DOMICILE_POLICY: policy, DOMICILE_REDIS_URL: redis.url, DOMICILE_REGION: region, DOMICILE_NODE_ID: id,
          DOMICILE_ADMIN_TOKEN: ADMIN, DOMICILE_TOKEN_SECRET: 'k1:tls-token-secret-0123456789abcdef', DOMICILE_CLUSTER_SECRET: 'tls-cluster-secret-0123456789',
          DOMICILE_REPLICATION: 'off',
        },
      });
    }
  }, 60_000);

  afterAll(async () => {
    for (const n of Object.values(nodes)) await n.dispose();
    await redis?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  const call = (id: string, method: string, route: string, body?: unknown) => testRequest(`${nodes[id]!.url}${route}`, {
    method, ca,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });

  it('nodes announce https URLs, relay creation and queries over https, and redirect to the owner\'s https URL', async () => {
    expect(nodes['north-1']!.url).toMatch(/^https:\/\//);
    const cluster = JSON.parse((await call('south-1', 'GET', '/v1/cluster')).text);
    expect(cluster.nodes.map((n: any) => n.url)).toEqual([nodes['north-1']!.url, nodes['south-1']!.url]);

    const created = await call('south-1', 'POST', '/v1/tenants', { id: 'acme', residency: 'n' });
    expect(created.status).toBe(201);
    expect(JSON.parse(created.text)).toMatchObject({ region: 'north', node: 'north-1' });
    expect((await call('south-1', 'POST', '/v1/tenants/acme/query', { sql: 'CREATE TABLE t (v TEXT)' })).status).toBe(200);
    expect((await call('south-1', 'POST', '/v1/tenants/acme/query', { sql: "INSERT INTO t VALUES ('over tls')" })).status).toBe(200);
    const read = await call('north-1', 'POST', '/v1/tenants/acme/query', { sql: 'SELECT v FROM t' });
    expect(JSON.parse(read.text).rows).toEqual([['over tls']]);

    expect((await call('south-1', 'POST', '/v1/tenants', { id: 'shut', residency: 'closed' })).status).toBe(201);
    const redirected = await call('south-1', 'POST', '/v1/tenants/shut/query', { sql: 'SELECT 1' });
    expect(redirected.status).toBe(307);
    expect(redirected.headers.get('location')).toBe(`${nodes['north-1']!.url}/v1/tenants/shut/query`);
  });

  it('refuses plain http on a TLS node', async () => {
    await expect(testRequest(nodes['north-1']!.url.replace('https:', 'http:') + '/healthz')).rejects.toThrow();
  });
});
