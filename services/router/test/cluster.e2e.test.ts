// A cluster of four `domicile serve` processes (two in eu-west, one each in
// eu-central and us-east) on one real redis-server, each region with its own
// s3rver (DESIGN §2, §4 transit, §5 redirects, §10; docs/cluster.md):
//   a. every node joins and sees the others in GET /v1/cluster;
//   b. a tenant created through a node of a foreign region lands on a node of
//      its own region (and its file only there);
//   c. a request for a tenant owned elsewhere is relayed when the residency
//      allows transit through the asking node's region, and answered 307 with
//      Location and the Domicile-* headers otherwise — no row in that answer;
//   d. tenant tokens, idempotency keys and errors pass through a relay; a
//      token of another tenant is refused before any routing.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardPath } from '@domicile/shard';
import {
  startDomicile, startRedisServer, startS3Server, S3RVER_CREDENTIALS, type DomicileServer, type RedisServer, type S3Server,
} from '@domicile/testkit';

const POLICY = `version: 1
regions:
  eu-west:    { jurisdiction: eu }
  eu-central: { jurisdiction: eu }
  us-east:    { jurisdiction: us }
residencies:
  eu:
    regions: [eu-west, eu-central]
    transit: redirect
  us:
    regions: [us-east]
`;
const ADMIN = 'cluster-admin-token-0123456789';
const NODES = [
  { id: 'eu-west-1', region: 'eu-west' },
  { id: 'eu-west-2', region: 'eu-west' },
  { id: 'eu-central-1', region: 'eu-central' },
  { id: 'us-east-1', region: 'us-east' },
] as const;
type NodeId = (typeof NODES)[number]['id'];

describe('a cluster of four node processes on Redis and three S3-compatible servers', () => {
  const scratch = mkdtempSync(path.join(tmpdir(), 'domicile-cluster-'));
  let redis: RedisServer;
  const s3 = new Map<string, S3Server>();
  const nodes = new Map<NodeId, DomicileServer>();
  const node = (id: NodeId) => nodes.get(id)!;

  /** fetch without following redirects; JSON in and out. */
  const call = async (id: NodeId, method: string, route: string, body?: unknown, opts: { token?: string; headers?: Record<string, string> } = {}) => {
    const res = await fetch(`${node(id).url}${route}`, {
      method,
      redirect: 'manual',
      headers: { authorization: `Bearer ${opts.token ?? ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: any = text;
    try { parsed = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, body: parsed, text, headers: res.headers };
  };

  beforeAll(async () => {
    const policyPath = path.join(scratch, 'placement.yaml');
    writeFileSync(policyPath, POLICY);
    redis = await startRedisServer();
    for (const region of ['eu-west', 'eu-central', 'us-east']) s3.set(region, await startS3Server({ buckets: [region] }));
    const common = {
      DOMICILE_POLICY: policyPath,
      DOMICILE_REDIS_URL: redis.url,
      DOMICILE_ADMIN_TOKEN: ADMIN,
      DOMICILE_TOKEN_SECRET: 'k1:cluster-token-secret-0123456789abcdef',
      DOMICILE_CLUSTER_SECRET: 'cluster-secret-0123456789abcdef',
      DOMICILE_LEASE_TTL_MS: '3000',
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    };
    // Sequentially: a node's start is quick, and four at once on 2 cores only adds noise.
    for (const n of NODES) {
      nodes.set(n.id, await startDomicile({
        env: {
          ...common,
          DOMICILE_REGION: n.region,
          DOMICILE_NODE_ID: n.id,
          DOMICILE_BUCKETS: `${n.region}=${s3.get(n.region)!.bucketUrl(n.region, 'domicile')}`,
        },
      }));
    }
  }, 120_000);

  afterAll(async () => {
    for (const n of nodes.values()) await n.dispose();
    for (const s of s3.values()) await s.stop();
    await redis?.stop();
    rmSync(scratch, { recursive: true, force: true });
  }, 60_000);

  it('every node joined: GET /v1/cluster on any node lists all four, live, with one policy hash', async () => {
    for (const n of NODES) {
      const res = await call(n.id, 'GET', '/v1/cluster');
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ mode: 'cluster', node: n.id, policyMismatch: false });
      expect(res.body.nodes.map((m: any) => [m.id, m.region, m.healthy])).toEqual([...NODES].sort((a, b) => a.id.localeCompare(b.id)).map((m) => [m.id, m.region, true]));
      expect(res.body.policyHashes).toHaveLength(1);
      expect(res.body.nodes.find((m: any) => m.id === 'eu-central-1').url).toBe(node('eu-central-1').url);
    }
  });

  it('a tenant created through a node of a foreign region lands on a node of its own region, its file only there', async () => {
    const eu = await call('us-east-1', 'POST', '/v1/tenants', { id: 'eu-co', residency: 'eu', region: 'eu-central' });
    expect(eu.status).toBe(201);
    expect(eu.body).toMatchObject({ id: 'eu-co', region: 'eu-central', node: 'eu-central-1', epoch: 1, state: 'active' });
    const us = await call('eu-west-1', 'POST', '/v1/tenants', { id: 'us-co', residency: 'us' });
    expect(us.status).toBe(201);
    expect(us.body).toMatchObject({ region: 'us-east', node: 'us-east-1' });
    const west = await call('us-east-1', 'POST', '/v1/tenants', { id: 'west-co', residency: 'eu' });
    expect(west.status).toBe(201);
    expect(west.body.region).toBe('eu-west');
    expect(['eu-west-1', 'eu-west-2']).toContain(west.body.node);

    for (const [tenant, owner] of [['eu-co', 'eu-central-1'], ['us-co', 'us-east-1'], ['west-co', west.body.node]] as const) {
      for (const n of NODES) {
        const file = shardPath(path.join(node(n.id).dataDir, n.region), tenant);
        expect({ tenant, node: n.id, exists: existsSync(file) }).toEqual({ tenant, node: n.id, exists: n.id === owner });
      }
    }
    // The same id again, through yet another node: TENANT_EXISTS from the directory every node shares.
    const again = await call('eu-west-2', 'POST', '/v1/tenants', { id: 'eu-co', residency: 'eu', region: 'eu-central' });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('TENANT_EXISTS');
  });

  it('relays where the residency allows transit, answers 307 with the owner\'s location otherwise — never the rows', async () => {
    expect((await call('eu-central-1', 'POST', '/v1/tenants/eu-co/query', { sql: 'CREATE TABLE secrets (v TEXT)' })).status).toBe(200);
    expect((await call('eu-central-1', 'POST', '/v1/tenants/eu-co/query', { sql: "INSERT INTO secrets VALUES ('gdpr-row')" })).status).toBe(200);

    // eu-west is one of the eu regions: relayed.
    const relayed = await call('eu-west-1', 'POST', '/v1/tenants/eu-co/query', { sql: 'SELECT v FROM secrets' });
    expect(relayed.status).toBe(200);
    expect(relayed.body.rows).toEqual([['gdpr-row']]);
    expect(relayed.headers.get('domicile-node')).toBe('eu-central-1');

    // us-east is not, and the eu residency says `transit: redirect`: 307, no row in the answer.
    const redirected = await call('us-east-1', 'POST', '/v1/tenants/eu-co/query', { sql: 'SELECT v FROM secrets' });
    expect(redirected.status).toBe(307);
    expect(redirected.headers.get('location')).toBe(`${node('eu-central-1').url}/v1/tenants/eu-co/query`);
    expect(redirected.headers.get('domicile-region')).toBe('eu-central');
    expect(redirected.headers.get('domicile-node')).toBe('eu-central-1');
    expect(redirected.headers.get('domicile-epoch')).toBe('1');
    expect(redirected.text).not.toContain('gdpr-row');
    // Following it (re-sending the token, as the TypeScript client does) reaches the owner.
    const followed = await fetch(redirected.headers.get('location')!, {
      method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ sql: 'SELECT v FROM secrets' }),
    });
    expect(((await followed.json()) as any).rows).toEqual([['gdpr-row']]);
    // The admin view of the tenant is routed the same way.
    expect((await call('us-east-1', 'GET', '/v1/tenants/eu-co')).status).toBe(307);

    // A us tenant (transit: proxy, the default) is relayed from anywhere, including eu nodes.
    expect((await call('eu-west-2', 'POST', '/v1/tenants/us-co/query', { sql: 'CREATE TABLE t (v INTEGER)' })).status).toBe(200);
    const fromEu = await call('eu-central-1', 'POST', '/v1/tenants/us-co/batch', { statements: [{ sql: 'INSERT INTO t VALUES (1)' }, { sql: 'SELECT count(*) FROM t' }] });
    expect(fromEu.status).toBe(200);
    expect(fromEu.body.results[1].rows).toEqual([[1]]);
  });

  it('passes tenant tokens, idempotency keys and errors through a relay; refuses another tenant\'s token before routing', async () => {
    const tok = await call('eu-west-1', 'POST', '/v1/tenants/us-co/tokens', { scope: 'write' });
    expect(tok.status).toBe(201);
    const token = tok.body.token as string;

    const insert = () => call('eu-west-2', 'POST', '/v1/tenants/us-co/query', { sql: 'INSERT INTO t VALUES (?)', params: [42] }, { token, headers: { 'idempotency-key': 'retry-me-1' } });
    const first = await insert();
    const second = await insert();
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(second.body).toEqual(first.body);
    const count = await call('eu-central-1', 'POST', '/v1/tenants/us-co/query', { sql: 'SELECT count(*) FROM t WHERE v = 42' }, { token });
    expect(count.body.rows).toEqual([[1]]);

    const bad = await call('eu-west-1', 'POST', '/v1/tenants/us-co/query', { sql: 'SELECT * FROM nope' }, { token });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('SQL_ERROR');

    const wrongTenant = await call('us-east-1', 'POST', '/v1/tenants/eu-co/query', { sql: 'SELECT 1' }, { token });
    expect(wrongTenant.status).toBe(403);
    expect(wrongTenant.headers.get('location')).toBeNull();
    const anonymous = await fetch(`${node('us-east-1').url}/v1/tenants/eu-co/query`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/json' }, body: '{"sql":"SELECT 1"}' });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('location')).toBeNull();
  });
});
