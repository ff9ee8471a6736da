// Three regions, each with its own S3-compatible server (three s3rver child
// processes), one `domicile serve` child process whose DOMICILE_BUCKETS points
// each region at its own server (DESIGN §6a, §8, invariants 2 and 3):
//   a. a sync tenant's 200 acknowledged writes survive SIGKILL of the node:
//      the offline restore CLI rebuilds them from that region's bucket alone;
//   b. a point-in-time fork between two write bursts holds exactly the first;
//   c. a bucket server killed and restarted under load: async tenants keep
//      serving and catch up, sync tenants answer REPLICATION_UNAVAILABLE and
//      lose nothing acknowledged or committed locally;
//   d. afterwards no server holds an object of another region's tenant.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openObjectStore, type ObjectStore } from '@domicile/object-store';
import { listGenerations, restore } from '@domicile/replication';
import { startDomicile, startS3Server, S3RVER_CREDENTIALS, type DomicileServer, type S3Server } from '@domicile/testkit';

const BIN = fileURLToPath(new URL('../../../packages/cli/bin/domicile.js', import.meta.url));
const REGIONS = ['eu-west', 'eu-central', 'us-east'] as const;
type Region = (typeof REGIONS)[number];
const POLICY = `version: 1
regions:
  eu-west:    { jurisdiction: eu }
  eu-central: { jurisdiction: eu }
  us-east:    { jurisdiction: us }
residencies:
  eu:
    regions: [eu-west, eu-central]
  us:
    regions: [us-east]
`;
const AWS_ENV = { AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey };
/** Bucket prefix inside every server's bucket; keys outside it would be strangers too. */
const PREFIX = 'domicile';

const scratch = mkdtempSync(path.join(tmpdir(), 'domicile-3regions-'));
const servers = {} as Record<Region, S3Server>;
const bucketUrls = {} as Record<Region, string>;
/** Which region each tenant was created in (case d checks the servers against it). */
const homeOf = new Map<string, Region>();
let node: DomicileServer;

beforeAll(async () => {
  const started = await Promise.all(REGIONS.map((r) => startS3Server({ buckets: [`dom-${r}`] })));
  REGIONS.forEach((r, i) => {
    servers[r] = started[i]!;
    // Two quick attempts: a killed server is noticed within a second.
    bucketUrls[r] = `${servers[r].bucketUrl(`dom-${r}`, PREFIX)}&maxAttempts=2&connectTimeoutMs=500`;
  });
  const policyPath = path.join(scratch, 'placement.yaml');
  writeFileSync(policyPath, POLICY);
  node = await startDomicile({
    env: {
      ...AWS_ENV,
      DOMICILE_POLICY: policyPath,
      DOMICILE_ADMIN_TOKEN: 'three-regions-admin-token-0123456789',
      DOMICILE_BUCKETS: REGIONS.map((r) => `${r}=${bucketUrls[r]}`).join(','),
      DOMICILE_LOG_LEVEL: 'warn',
    },
  });
}, 60_000);

afterAll(async () => {
  await node?.dispose();
  await Promise.all(REGIONS.map((r) => servers[r]?.stop()));
  rmSync(scratch, { recursive: true, force: true });
});

async function createTenant(id: string, region: Region, durability: 'sync' | 'async'): Promise<void> {
  const res = await node.api('POST', '/v1/tenants', { id, residency: region === 'us-east' ? 'us' : 'eu', region, durability });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  expect(res.body).toMatchObject({ id, region, durability });
  homeOf.set(id, region);
  const ddl = await node.api('POST', `/v1/tenants/${id}/query`, { sql: 'CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)' });
  expect(ddl.status, JSON.stringify(ddl.body)).toBe(200);
}

const insert = (tenant: string, id: number) =>
  node.api('POST', `/v1/tenants/${tenant}/query`, { sql: 'INSERT INTO kv (id, v) VALUES (?, ?)', params: [id, `${tenant} ${id}`] });

async function liveIds(tenant: string): Promise<number[]> {
  const res = await node.api('POST', `/v1/tenants/${tenant}/query`, { sql: 'SELECT id FROM kv ORDER BY id' });
  expect(res.status).toBe(200);
  return (res.body.rows as number[][]).map((r) => r[0]!);
}

/** Run `fn(0..n-1)` with at most `width` in flight. */
async function inParallel(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await fn(next++);
  }));
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Replication of `tenant` has caught up: lag 0 and every local txid in the bucket. */
async function caughtUp(tenant: string): Promise<boolean> {
  const r = (await node.api('GET', `/v1/tenants/${tenant}`)).body.replication;
  return r.lagMs === 0 && r.replicatedTxid !== null && r.replicatedTxid === r.lastTxid;
}

function openStore(region: Region, prefix = PREFIX): ObjectStore {
  return openObjectStore(servers[region].bucketUrl(`dom-${region}`, prefix), { s3: { credentials: S3RVER_CREDENTIALS } });
}

/** `domicile restore TENANT --from URL --out FILE --json`, no node involved. */
function offlineRestore(tenant: string, region: Region, out: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DOMICILE_') && !k.startsWith('AWS_')));
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'restore', tenant, '--from', bucketUrls[region], '--out', out, '--json'],
      { env: { ...clean, ...AWS_ENV, DOMICILE_URL: 'http://127.0.0.1:9' }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
        resolve({ code, stdout, stderr });
      });
  });
}

/** `kv` ids and the integrity_check verdict of a restored file. */
function readRestored(file: string): { ids: number[]; integrity: string[] } {
  const db = new Database(file, { readonly: true });
  try {
    return {
      ids: db.prepare('SELECT id FROM kv ORDER BY id').pluck().all() as number[],
      integrity: db.prepare('PRAGMA integrity_check').pluck().all() as string[],
    };
  } finally {
    db.close();
  }
}

/** Restore the newest generation of `tenant` from its region's bucket, in process (the library behind the CLI). */
async function bucketIds(tenant: string, region: Region): Promise<number[]> {
  const store = openStore(region);
  try {
    let incarnation: string | undefined;
    for await (const e of store.list(`tenants/${tenant}/`)) { incarnation = e.key.split('/')[2]; break; }
    expect(incarnation, `no objects of ${tenant} in ${region}`).toBeDefined();
    const g = (await listGenerations(store, tenant, incarnation!)).at(-1)!;
    const out = path.join(scratch, `${tenant}-${Date.now()}-${Math.random().toString(16).slice(2)}.db`);
    await restore({ store, ref: { tenant, incarnation: incarnation!, epoch: g.epoch, generation: g.generation }, outPath: out });
    const { ids, integrity } = readRestored(out);
    expect(integrity).toEqual(['ok']);
    return ids;
  } finally {
    store.close?.();
  }
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe('three regions, three S3 servers, one node', () => {
  it('a. a sync tenant\'s 200 acknowledged writes survive SIGKILL: the offline restore from its region\'s bucket alone holds all 200', async () => {
    await createTenant('sync-a', 'eu-central', 'sync');
    const acked: number[] = [];
    await inParallel(200, 8, async (i) => {
      const res = await insert('sync-a', i + 1);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      acked.push(i + 1);
    });
    expect(acked.length).toBe(200);
    await node.kill();
    try {
      const out = path.join(scratch, 'sync-a.db');
      const r = await offlineRestore('sync-a', 'eu-central', out);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ tenant: 'sync-a', out });
      // The AWS SDK's plain-text Node-version warning is kept out of the output (docs/operations.md, "Node 20").
      expect(r.stderr).not.toContain('NodeVersionSupportWarning');
      const restored = readRestored(out);
      expect(restored.integrity).toEqual(['ok']);
      expect(restored.ids).toEqual(range(1, 200));
    } finally {
      // The later cases need the node back (it resumes from the same data dir).
      await node.restart();
    }
    expect(await liveIds('sync-a')).toEqual(range(1, 200));
  }, 40_000);

  it('b. a point-in-time fork between two write bursts holds exactly the first burst', async () => {
    await createTenant('pitr-b', 'eu-west', 'sync');
    for (const id of range(1, 30)) expect((await insert('pitr-b', id)).status).toBe(200);
    await waitFor('pitr-b to replicate', () => caughtUp('pitr-b'));
    await new Promise((r) => setTimeout(r, 50));
    const between = new Date();
    await new Promise((r) => setTimeout(r, 50));
    for (const id of range(31, 30)) expect((await insert('pitr-b', id)).status).toBe(200);
    await waitFor('pitr-b to replicate', () => caughtUp('pitr-b'));

    const res = await node.api('POST', '/v1/tenants/pitr-b/restore', { at: between.toISOString(), as: 'pitr-b-fork' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.tenant).toBe('pitr-b-fork');
    expect(Date.parse(res.body.time)).toBeLessThanOrEqual(between.getTime());
    expect(Number.isSafeInteger(res.body.txid)).toBe(true);
    homeOf.set('pitr-b-fork', 'eu-west');
    const fork = (await node.api('GET', '/v1/tenants/pitr-b-fork')).body;
    expect(fork).toMatchObject({ id: 'pitr-b-fork', region: 'eu-west' });
    expect(await liveIds('pitr-b-fork')).toEqual(range(1, 30));
    expect(await liveIds('pitr-b')).toEqual(range(1, 60));
    // The fork is a tenant of its own: it takes writes and replicates to its region's bucket.
    expect((await insert('pitr-b-fork', 1000)).status).toBe(200);
    await waitFor('the fork to replicate', () => caughtUp('pitr-b-fork'));
    expect(await bucketIds('pitr-b-fork', 'eu-west')).toEqual([...range(1, 30), 1000]);
  }, 30_000);

  it('c. a bucket server killed and restarted under load: async tenants keep serving and catch up, sync tenants refuse and lose nothing', async () => {
    const asyncTenants = ['load-async-1', 'load-async-2'];
    const syncTenants = ['load-sync-1', 'load-sync-2'];
    for (const id of asyncTenants) await createTenant(id, 'us-east', 'async');
    for (const id of syncTenants) await createTenant(id, 'us-east', 'sync');
    // Another region's tenant under the same load is not disturbed at all.
    await createTenant('calm-eu', 'eu-west', 'sync');

    interface Outcome { status: number; code?: string; committedLocally?: boolean; afterRestart: boolean }
    const outcomes = new Map<string, Map<number, Outcome>>();
    let stop = false;
    let restarted = false;
    const writer = async (tenant: string, first: number) => {
      const seen = new Map<number, Outcome>();
      outcomes.set(`${tenant}#${first}`, seen);
      for (let id = first; !stop; id++) {
        const afterRestart = restarted;
        const res = await insert(tenant, id);
        seen.set(id, { status: res.status, code: res.body?.error?.code, committedLocally: res.body?.error?.committedLocally, afterRestart });
        // Refused writes come back at once; do not spin.
        if (res.status !== 200) await new Promise((r) => setTimeout(r, 20));
      }
    };
    const writers = [...asyncTenants, ...syncTenants, 'calm-eu'].flatMap((t) => [writer(t, 1), writer(t, 1_000_000)]);

    await new Promise((r) => setTimeout(r, 700));
    await servers['us-east'].kill();
    await new Promise((r) => setTimeout(r, 2000));
    await servers['us-east'].restart();
    restarted = true;
    await new Promise((r) => setTimeout(r, 2500));
    stop = true;
    await Promise.all(writers);

    const of = (tenant: string) => [...outcomes.entries()].filter(([k]) => k.startsWith(`${tenant}#`)).flatMap(([, m]) => [...m.entries()]);
    // Async tenants and the other region: every write answered 200, through the outage.
    for (const t of [...asyncTenants, 'calm-eu']) {
      const all = of(t);
      expect(all.length).toBeGreaterThan(20);
      expect(all.filter(([, o]) => o.status !== 200), t).toEqual([]);
    }
    // Sync tenants: 200 or 503 REPLICATION_UNAVAILABLE, nothing else; some refused, some accepted after the restart.
    for (const t of syncTenants) {
      const all = of(t);
      const bad = all.filter(([, o]) => o.status !== 200 && !(o.status === 503 && o.code === 'REPLICATION_UNAVAILABLE'));
      expect(bad, t).toEqual([]);
      expect(all.filter(([, o]) => o.status === 503).length, `${t} saw no REPLICATION_UNAVAILABLE`).toBeGreaterThan(0);
      expect(all.filter(([, o]) => o.status === 200 && o.afterRestart).length, `${t} never recovered`).toBeGreaterThan(0);
    }

    // Catch-up: lag back to 0 for everyone, then the bucket holds what was promised.
    for (const t of [...asyncTenants, ...syncTenants]) await waitFor(`${t} to catch up`, () => caughtUp(t), 20_000);
    for (const t of asyncTenants) {
      const acked = of(t).map(([id]) => id).sort((a, b) => a - b);
      expect(await liveIds(t)).toEqual(acked);
      expect(await bucketIds(t, 'us-east')).toEqual(acked);
    }
    for (const t of syncTenants) {
      const all = of(t);
      const kept = all.filter(([, o]) => o.status === 200 || o.committedLocally === true).map(([id]) => id).sort((a, b) => a - b);
      const refusedUpFront = all.filter(([, o]) => o.status === 503 && o.committedLocally === false).map(([id]) => id);
      const inBucket = await bucketIds(t, 'us-east');
      // Every acknowledged and every committedLocally write is in the bucket; a write refused up front never ran.
      expect(inBucket).toEqual(kept);
      expect(inBucket.filter((id) => refusedUpFront.includes(id))).toEqual([]);
      expect(await liveIds(t)).toEqual(kept);
    }
  }, 45_000);

  it('d. no object of any tenant exists in another region\'s server', async () => {
    expect(homeOf.size).toBeGreaterThanOrEqual(7);
    for (const region of REGIONS) {
      // The whole bucket, not only our prefix: a key anywhere else would be a stranger too.
      const store = openStore(region, '');
      const tenantsSeen = new Set<string>();
      try {
        for await (const e of store.list('')) {
          const m = /^domicile\/tenants\/([^/]+)\//.exec(e.key);
          expect(m, `unexpected key ${e.key} in ${region}'s server`).not.toBeNull();
          tenantsSeen.add(m![1]!);
        }
      } finally {
        store.close?.();
      }
      const expected = [...homeOf.entries()].filter(([, r]) => r === region).map(([t]) => t).sort();
      expect([...tenantsSeen].sort(), region).toEqual(expected);
    }
  });
});
