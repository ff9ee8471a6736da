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
//      token of another tenant is refused before any routing;
//   d2. schema fan-out: the migration list in Redis, one job from any node
//      migrates every node's tenants;
//   e. a move across processes under a writer that goes through a third
//      node: no failed request, every acknowledged write kept, epoch + 1, the
//      old region's S3 server holds nothing of the tenant, the new one its
//      generation;
//   f. SIGKILL of the owner of a sync tenant: its regional peer takes it over
//      from the bucket with every acknowledged write and a higher epoch; the
//      killed node, restarted, archives its stale copy and routes to the new
//      owner;
//   g. Redis paused (SIGSTOP): the owner keeps serving its tenants until its
//      lease deadline, other nodes answer 503 DIRECTORY_UNAVAILABLE within the
//      bound, and after SIGCONT everything serves again — same owners, same
//      epochs, no restart;
//   h. a node that loads another policy: placement and moves answer 409
//      POLICY_MISMATCH on every node until it reloads the same file (SIGHUP)
//      and announces its new hash.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openObjectStore } from '@domicile/object-store';
import { parseKey } from '@domicile/replication';
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
          // Every region's bucket (a node writes only its own; erase and the residency audit read them all).
          DOMICILE_BUCKETS: [...s3].map(([r, srv]) => `${r}=${srv.bucketUrl(r, 'domicile')}`).join(','),
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

  it('schema fan-out across nodes: one list in Redis, one job from any node migrating every owner\'s tenants, new tenants get it too', async () => {
    const put = await call('eu-west-1', 'PUT', '/v1/schema', { migrations: [{ name: '0001_notes', sql: 'CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);' }] });
    expect(put.status).toBe(200);
    expect((await call('us-east-1', 'GET', '/v1/schema')).body.migrations.map((m: any) => m.name)).toEqual(['0001_notes']);
    const started = await call('us-east-1', 'POST', '/v1/schema/apply', {});
    expect(started.status).toBe(202);
    let job: any;
    for (const deadline = performance.now() + 20_000; performance.now() < deadline;) {
      job = (await call('us-east-1', 'GET', `/v1/schema/jobs/${started.body.jobId}`)).body;
      if (job.state === 'done') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(job).toMatchObject({ state: 'done', failed: 0, incomplete: [] });
    expect(job.total).toBe(3); // eu-co, us-co, west-co, each on its owner
    expect(job.applied).toBe(3);
    expect(job.nodes.map((n: any) => n.node).sort()).toEqual(NODES.map((n) => n.id).sort());
    // Any node can read the job (it asks the node that started it).
    expect((await call('eu-central-1', 'GET', `/v1/schema/jobs/${started.body.jobId}`)).body).toMatchObject({ state: 'done', applied: 3 });
    for (const id of ['eu-co', 'us-co', 'west-co']) {
      const r = await call('eu-west-1', 'POST', `/v1/tenants/${id}/query`, { sql: "SELECT count(*) FROM sqlite_master WHERE name = 'notes'" });
      expect(r.status === 200 ? r.body.rows : r.status, id).toEqual([[1]]);
    }
    // A tenant created afterwards, on another node, gets the stored list before it serves.
    expect((await call('eu-central-1', 'POST', '/v1/tenants', { id: 'new-co', residency: 'us' })).status).toBe(201);
    expect((await call('us-east-1', 'POST', '/v1/tenants/new-co/query', { sql: 'SELECT count(*) FROM notes' })).body.rows).toEqual([[0]]);
  }, 60_000);

  it('moves a tenant across processes under a writer: no failed request, every acknowledged write kept, the old region\'s bucket emptied', async () => {
    expect((await call('eu-central-1', 'POST', '/v1/tenants/eu-co/query', { sql: 'CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB)' })).status).toBe(200);
    expect((await call('eu-central-1', 'POST', '/v1/tenants/eu-co/query', { sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) INSERT INTO big (b) SELECT randomblob(3000) FROM c' })).status).toBe(200);
    expect((await call('eu-central-1', 'POST', '/v1/tenants/eu-co/query', { sql: 'CREATE TABLE w (n INTEGER PRIMARY KEY)' })).status).toBe(200);
    let stop = false;
    const acked: number[] = [];
    const failed: unknown[] = [];
    const writer = (async () => {
      for (let n = 0; !stop; n++) {
        // Through eu-west-1: relayed to the owner before the move, served or relayed after it.
        const r = await call('eu-west-1', 'POST', '/v1/tenants/eu-co/query', { sql: 'INSERT INTO w VALUES (?)', params: [n] });
        if (r.status === 200) acked.push(n);
        else failed.push(r.body);
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    // Asked of a node that is neither end: routed to the owner, which drives the move.
    const moved = await call('eu-west-2', 'POST', '/v1/tenants/eu-co/move?wait=1', { to: 'eu-west', node: 'eu-west-2' });
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await writer;
    expect(moved.status, JSON.stringify(moved.body)).toBe(200);
    expect(moved.body).toMatchObject({ tenant: 'eu-co', from: 'eu-central', to: 'eu-west', node: 'eu-west-2', phase: 'done', epoch: { from: 1, to: 2 } });
    expect(failed).toEqual([]);
    expect(acked.length).toBeGreaterThan(10);

    const rec = await call('us-east-1', 'GET', '/v1/tenants/eu-co');
    expect(rec.status).toBe(307);
    expect(rec.headers.get('domicile-node')).toBe('eu-west-2');
    expect(rec.headers.get('domicile-epoch')).toBe('2');
    const rows = await call('eu-west-1', 'POST', '/v1/tenants/eu-co/query', { sql: 'SELECT n FROM w ORDER BY n' });
    const present = new Set((rows.body.rows as Array<[number]>).map(([n]) => n));
    for (const n of acked) expect(present.has(n)).toBe(true);
    expect((await call('eu-west-2', 'POST', '/v1/tenants/eu-co/query', { sql: 'SELECT count(*) FROM big' })).body.rows).toEqual([[1000]]);
    expect(existsSync(shardPath(path.join(node('eu-central-1').dataDir, 'eu-central'), 'eu-co'))).toBe(false);
    expect(existsSync(shardPath(path.join(node('eu-west-2').dataDir, 'eu-west'), 'eu-co'))).toBe(true);

    // Buckets: nothing left in eu-central's server; the new epoch's generation in eu-west's.
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
    const old = openObjectStore(s3.get('eu-central')!.bucketUrl('eu-central', 'domicile'));
    const neu = openObjectStore(s3.get('eu-west')!.bucketUrl('eu-west', 'domicile'));
    try {
      const left: string[] = [];
      for await (const e of old.list('tenants/eu-co/')) left.push(e.key);
      expect(left).toEqual([]);
      const keys: string[] = [];
      for await (const e of neu.list('tenants/eu-co/')) keys.push(e.key);
      const parsed = keys.map((k) => parseKey(k));
      expect(new Set(parsed.map((k) => k.epoch))).toEqual(new Set([2]));
      expect(new Set(parsed.map((k) => k.generation)).size).toBe(1);
      expect(parsed.some((k) => k.kind === 'snapshot')).toBe(true);
    } finally {
      old.close();
      neu.close();
      if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID; else process.env.AWS_ACCESS_KEY_ID = saved.id;
      if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY; else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
    }
    const audit = await call('eu-central-1', 'GET', '/v1/audit?tenant=eu-co');
    expect(audit.body.events.find((e: any) => e.action === 'tenant.move')).toMatchObject({ details: { from: 'eu-central', to: 'eu-west', toNode: 'eu-west-2', newEpoch: 2 } });
    // The move's status lives on the node that drove it; any node finds it.
    const status = await call('us-east-1', 'GET', `/v1/moves/${moved.body.moveId}`);
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({ moveId: moved.body.moveId, phase: 'done' });
    expect(status.headers.get('domicile-node')).toBe('eu-central-1');
    expect((await call('us-east-1', 'GET', '/v1/moves/00000000-0000-4000-8000-000000000000')).status).toBe(404);

    // The residency audit, asked of any node, reads every node's files and every bucket.
    const residency = await call('us-east-1', 'GET', '/v1/audit/residency');
    expect(residency.status).toBe(200);
    expect(residency.body.incomplete).toEqual([]);
    expect(residency.body.violations).toEqual([]);
    const line = residency.body.tenants.find((l: any) => l.tenant === 'eu-co');
    expect(Object.keys(line.byRegion)).toEqual(['eu-west']);
    expect(line.byRegion['eu-west'].fileBytes).toBeGreaterThan(3_000_000);
    expect(line.byRegion['eu-west'].objects).toBeGreaterThan(0);
    const us = residency.body.tenants.find((l: any) => l.tenant === 'us-co');
    expect(us.byRegion['us-east'].files).toBeGreaterThan(0);
  }, 60_000);

  it('SIGKILL of a sync tenant\'s owner: its regional peer serves it from the bucket with every acknowledged write and epoch + 1; the stale node, restarted, archives its copy', async () => {
    const created = await call('eu-west-1', 'POST', '/v1/tenants', { id: 'sync-co', residency: 'eu', region: 'eu-west', durability: 'sync' });
    expect(created.status).toBe(201);
    expect(created.body.node).toBe('eu-west-1');
    expect((await call('eu-west-1', 'POST', '/v1/tenants/sync-co/query', { sql: 'CREATE TABLE w (n INTEGER PRIMARY KEY)' })).status).toBe(200);
    const acked: number[] = [];
    for (let n = 0; n < 60; n++) {
      const r = await call('eu-west-1', 'POST', '/v1/tenants/sync-co/query', { sql: 'INSERT INTO w VALUES (?)', params: [n] });
      expect(r.status).toBe(200);
      acked.push(n);
    }
    await node('eu-west-1').kill();
    const killedAt = performance.now();

    // Through the peer of the same region: 503 (owner without lease, or restoring) until the takeover is done.
    let served: Awaited<ReturnType<typeof call>> | undefined;
    const codes = new Set<string>();
    while (performance.now() - killedAt < 20_000) {
      const r = await call('eu-west-2', 'POST', '/v1/tenants/sync-co/query', { sql: 'SELECT n FROM w ORDER BY n' });
      if (r.status === 200) { served = r; break; }
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).not.toBeNull();
      codes.add(r.body.error.code);
      await new Promise((res) => setTimeout(res, 100));
    }
    const detectionToServingMs = performance.now() - killedAt;
    expect(served, `not served within 20 s (saw ${[...codes].join(', ')})`).toBeDefined();
    expect(detectionToServingMs).toBeLessThan(10_000);
    expect(served!.body.rows).toEqual(acked.map((n) => [n]));
    const rec = await call('eu-central-1', 'GET', '/v1/tenants/sync-co');
    expect(rec.body).toMatchObject({ node: 'eu-west-2', region: 'eu-west', epoch: 2, state: 'active' });
    // It takes writes again, on the new owner, reached through any node.
    expect((await call('us-east-1', 'POST', '/v1/tenants/us-co/query', { sql: 'SELECT 1' })).status).toBe(200);
    expect((await call('eu-central-1', 'POST', '/v1/tenants/sync-co/query', { sql: 'INSERT INTO w VALUES (1000)' })).status).toBe(200);
    const audit = await call('eu-west-2', 'GET', '/v1/audit?tenant=sync-co');
    expect(audit.body.events.find((e: any) => e.action === 'tenant.failover')).toMatchObject({ details: { fromNode: 'eu-west-1', toNode: 'eu-west-2', epoch: 2 } });

    // The killed node comes back: its copy is archived (not served, not deleted) and requests go to the new owner.
    await node('eu-west-1').restart();
    const staleDir = path.join(node('eu-west-1').dataDir, 'eu-west', 'stale');
    const deadline = performance.now() + 10_000;
    while (!(existsSync(staleDir) && readdirSync(staleDir).some((n) => n.startsWith('sync-co.db'))) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(readdirSync(staleDir).some((n) => n.startsWith('sync-co.db'))).toBe(true);
    expect(existsSync(shardPath(path.join(node('eu-west-1').dataDir, 'eu-west'), 'sync-co'))).toBe(false);
    const via = await call('eu-west-1', 'POST', '/v1/tenants/sync-co/query', { sql: 'SELECT count(*) FROM w' });
    expect(via.status).toBe(200);
    expect(via.body.rows).toEqual([[acked.length + 1]]);
    expect(via.headers.get('domicile-node')).toBe('eu-west-2');
    expect(via.headers.get('domicile-epoch')).toBe('2');

    // The audit log, asked of any node, merges every node's part: the create (on eu-west-1) and the
    // failover (on eu-west-2), newest first; paging one event at a time walks the same list.
    const all = await call('us-east-1', 'GET', '/v1/audit?tenant=sync-co');
    expect(all.body.incomplete).toEqual([]);
    expect(all.body.events.map((e: any) => [e.action, e.node])).toEqual([['tenant.failover', 'eu-west-2'], ['tenant.create', 'eu-west-1']]);
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<typeof call>> = await call('eu-central-1', 'GET', `/v1/audit?tenant=sync-co&limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      paged.push(...page.body.events.map((e: any) => e.action));
      cursor = page.body.nextCursor;
    } while (cursor && paged.length < 10);
    expect(paged).toEqual(['tenant.failover', 'tenant.create']);
  }, 60_000);

  it('Redis paused: owners keep serving until their lease deadline, others answer a coded 503 in bounded time, all recovers without a restart', async () => {
    // Asked of eu-west-1, which may answer a coded 503 for a while after the pause (its peers rejoin).
    const placement = async (id: string) => {
      const until = performance.now() + 15_000;
      let r = await call('eu-west-1', 'GET', `/v1/tenants/${id}`);
      while (r.status === 503 && performance.now() < until) {
        expect(r.headers.get('retry-after')).not.toBeNull();
        await new Promise((res) => setTimeout(res, 100));
        r = await call('eu-west-1', 'GET', `/v1/tenants/${id}`);
      }
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return [id, r.headers.get('domicile-node') ?? r.body.node, Number(r.headers.get('domicile-epoch') ?? r.body.epoch)];
    };
    const before = await Promise.all(['eu-co', 'us-co', 'west-co'].map(placement));
    // us-co lives on us-east-1, which has read its record under its current lease.
    expect((await call('us-east-1', 'POST', '/v1/tenants/us-co/query', { sql: 'SELECT count(*) FROM t' })).status).toBe(200);
    redis.pause();
    const pausedAt = performance.now();
    try {
      const t1 = performance.now();
      const owner = await call('us-east-1', 'POST', '/v1/tenants/us-co/query', { sql: 'SELECT v FROM t WHERE v = 42' });
      expect(owner.status).toBe(200);
      expect(owner.body.rows).toEqual([[42]]);
      expect(performance.now() - t1).toBeLessThan(1000);

      const t2 = performance.now();
      const other = await call('eu-west-1', 'POST', '/v1/tenants/us-co/query', { sql: 'SELECT 1' });
      expect(other.status).toBe(503);
      expect(other.body.error.code).toBe('DIRECTORY_UNAVAILABLE');
      expect(other.headers.get('retry-after')).not.toBeNull();
      expect(performance.now() - t2).toBeLessThan(4000);

      // Past the lease deadline (TTL 3 s, margin 600 ms) the owner stops serving too.
      await new Promise((r) => setTimeout(r, Math.max(0, 3200 - (performance.now() - pausedAt))));
      // (Its in-memory record is no longer trusted, so it asks Redis, which does not answer.)
      const t3 = performance.now();
      const late = await call('us-east-1', 'POST', '/v1/tenants/us-co/query', { sql: 'SELECT 1' });
      expect(late.status).toBe(503);
      expect(['NODE_UNAVAILABLE', 'DIRECTORY_UNAVAILABLE']).toContain(late.body.error.code);
      expect(performance.now() - t3).toBeLessThan(4000);
    } finally {
      redis.resume();
    }
    // Every lease expired meanwhile: nodes rejoin and nobody takes a peer's tenants (they settle first).
    const resumedAt = performance.now();
    for (const [id, via] of [['eu-co', 'eu-west-1'], ['us-co', 'eu-central-1'], ['west-co', 'us-east-1']] as const) {
      let r: Awaited<ReturnType<typeof call>> | undefined;
      while (performance.now() - resumedAt < 15_000) {
        r = await call(via, 'POST', `/v1/tenants/${id}/query`, { sql: 'SELECT 1' });
        if (r.status === 200 || r.status === 307) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      expect([200, 307]).toContain(r!.status);
    }
    const after = await Promise.all(['eu-co', 'us-co', 'west-co'].map(placement));
    expect(after).toEqual(before);
  }, 60_000);

  it('a node with another policy joins: placement and moves answer 409 POLICY_MISMATCH everywhere until it reloads the same policy', async () => {
    const otherPolicy = path.join(scratch, 'other.yaml');
    writeFileSync(otherPolicy, POLICY.replace('transit: redirect', 'transit: proxy'));
    const odd = await startDomicile({
      env: {
        DOMICILE_POLICY: otherPolicy, DOMICILE_REDIS_URL: redis.url, DOMICILE_ADMIN_TOKEN: ADMIN,
        DOMICILE_TOKEN_SECRET: 'k1:cluster-token-secret-0123456789abcdef', DOMICILE_CLUSTER_SECRET: 'cluster-secret-0123456789abcdef',
        DOMICILE_LEASE_TTL_MS: '3000', DOMICILE_REGION: 'us-east', DOMICILE_NODE_ID: 'us-east-9', DOMICILE_REPLICATION: 'off',
      },
    });
    try {
      const view = await call('eu-west-1', 'GET', '/v1/cluster');
      expect(view.body.policyMismatch).toBe(true);
      expect(view.body.policyHashes).toHaveLength(2);
      const refused = await call('eu-west-1', 'POST', '/v1/tenants', { id: 'late-co', residency: 'us' });
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe('POLICY_MISMATCH');
      expect(refused.body.error.nodes.map((n: any) => n.id)).toEqual(['us-east-9']);
      const move = await call('eu-central-1', 'POST', '/v1/tenants/eu-co/move?wait=1', { to: 'eu-central' });
      expect(move.status).toBe(409);
      expect(move.body.error.code).toBe('POLICY_MISMATCH');

      // The odd node reloads the cluster's policy (SIGHUP) and announces its new hash: placement works again.
      writeFileSync(otherPolicy, POLICY);
      odd.signal('SIGHUP');
      let ok: Awaited<ReturnType<typeof call>> | undefined;
      for (const deadline = performance.now() + 10_000; performance.now() < deadline;) {
        ok = await call('eu-west-1', 'POST', '/v1/tenants', { id: 'late-co', residency: 'eu' });
        if (ok.status !== 409) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(ok!.status, JSON.stringify(ok!.body)).toBe(201);
      expect((await call('eu-west-1', 'GET', '/v1/cluster')).body.policyMismatch).toBe(false);
    } finally {
      await odd.dispose();
    }
  }, 60_000);
});
