// Async replication wired end to end (DESIGN §8): every write of a tenant is
// shipped to its region's bucket (filesystem default) as a snapshot + ordered
// segments; an offline restore of the latest txid equals the live data —
// through evictions by a tiny handle cache, through a checkpoint of a large
// WAL, and after kill -9 of a `domicile serve` process and a restart.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openObjectStore, type ObjectStore } from '@domicile/object-store';
import { listGenerations, restore } from '@domicile/replication';
import { startDomicile, type DomicileServer, type S3Server } from '@domicile/testkit';
import { s3TestApp, testApp, type TestApp } from './harness.ts';

const scratch = mkdtempSync(path.join(tmpdir(), 'domicile-repl-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function keys(store: ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.list(prefix)) out.push(e.key);
  return out.sort();
}

/** Restore the newest generation's latest txid into a file and read `kv` from it. */
async function restoredRows(store: ObjectStore, tenant: string, incarnation: string): Promise<{ rows: unknown[][]; txid: number; generations: number }> {
  const gens = await listGenerations(store, tenant, incarnation);
  const g = gens.at(-1)!;
  const outPath = path.join(scratch, `${tenant}-${Date.now()}-${Math.random().toString(16).slice(2)}.db`);
  const res = await restore({ store, ref: { tenant, incarnation, epoch: g.epoch, generation: g.generation }, outPath });
  const db = new Database(outPath, { readonly: true });
  try {
    const rows = db.prepare('SELECT id, v, length(b) FROM kv ORDER BY id').raw(true).all() as unknown[][];
    return { rows, txid: res.txid, generations: gens.length };
  } finally {
    db.close();
  }
}

describe('async replication in one process (filesystem buckets, tiny handle cache)', () => {
  let t: TestApp;
  const tenants = ['r-alpha', 'r-beta', 'r-gamma'];
  const q = (tenant: string, sql: string, params?: unknown[]) =>
    t.req('POST', `/v1/tenants/${tenant}/query`, params ? { sql, params } : { sql });
  const liveRows = async (tenant: string) => (await q(tenant, 'SELECT id, v, length(b) FROM kv ORDER BY id')).body.rows as unknown[][];
  const incarnation = async (tenant: string) => (await t.rt.directory.get(tenant))!.incarnation;
  const store = () => t.rt.bucketFor('moon-base')!;

  beforeAll(async () => {
    // Two workers, one open handle each: three tenants interleaved evict each other on every request.
    t = await testApp({ DOMICILE_MAX_OPEN_SHARDS: '2' });
    for (const id of tenants) {
      expect((await t.req('POST', '/v1/tenants', { id, residency: 'moon' })).status).toBe(201);
      expect((await q(id, 'CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT, b BLOB)')).status).toBe(200);
    }
  }, 60_000);
  afterAll(async () => t?.close());

  it('ships N interleaved writes as a snapshot + segments; restore of the latest txid equals the live data (evictions lose nothing)', async () => {
    for (let i = 1; i <= 40; i++) {
      for (const id of tenants) expect((await q(id, 'INSERT INTO kv (id, v) VALUES (?, ?)', [i, `${id} row ${i}`])).status).toBe(200);
    }
    expect(t.rt.pool.stats().evictions).toBeGreaterThan(0);
    expect(await t.rt.replicator!.flush()).toBe(true);
    for (const id of tenants) {
      const inc = await incarnation(id);
      const all = await keys(store(), `tenants/${id}/${inc}/`);
      expect(all.filter((k) => k.endsWith('.snap')).length).toBe(1);
      expect(all.filter((k) => k.endsWith('.seg')).length).toBeGreaterThan(0);
      const r = await restoredRows(store(), id, inc);
      expect(r.rows).toEqual(await liveRows(id));
      expect(r.rows.length).toBe(40);
      expect(r.generations).toBe(1);
      const view = (await t.req('GET', `/v1/tenants/${id}`)).body;
      expect(view.replication).toEqual({ mode: 'async', lagMs: 0, lastTxid: r.txid, replicatedTxid: r.txid });
    }
    // Metrics by region, never by tenant.
    const metrics = (await t.req('GET', '/metrics', undefined, null)).body as string;
    expect(Number(/^domicile_replication_uploaded_objects_total\{region="moon-base",kind="snapshot"\} (\d+)/m.exec(metrics)?.[1])).toBe(3);
    expect(Number(/^domicile_replication_uploaded_objects_total\{region="moon-base",kind="segment"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    expect(Number(/^domicile_replication_uploaded_bytes_total\{region="moon-base"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    expect(metrics).toMatch(/^domicile_replication_upload_duration_seconds_count\{region="moon-base",kind="segment"\} [1-9]/m);
    expect(metrics).toMatch(/^domicile_replication_lag_seconds\{region="moon-base"\} 0$/m);
    expect(metrics).not.toContain('r-alpha');
  });

  it('checkpoints a large, fully shipped WAL and continues the same generation', async () => {
    const id = 'r-alpha';
    // ~6 MiB of blobs: past the 4 MiB checkpoint threshold.
    for (let i = 0; i < 6; i++) expect((await q(id, 'INSERT INTO kv (id, v, b) VALUES (?, ?, randomblob(1048576))', [1000 + i, `blob ${i}`])).status).toBe(200);
    expect(await t.rt.replicator!.flush()).toBe(true);
    // The checkpoint ran after the ship: a small write after it must continue the generation.
    for (let i = 0; i < 5; i++) expect((await q(id, 'INSERT INTO kv (id, v) VALUES (?, ?)', [2000 + i, `after ${i}`])).status).toBe(200);
    expect(await t.rt.replicator!.flush()).toBe(true);
    const inc = await incarnation(id);
    const walBytes = (await import('node:fs')).statSync(`${t.rt.shardRef((await t.rt.directory.get(id))!).path}-wal`).size;
    expect(walBytes).toBeLessThan(4 << 20);
    const r = await restoredRows(store(), id, inc);
    expect(r.generations).toBe(1);
    expect(r.rows).toEqual(await liveRows(id));
    // A quiet tenant: checkpointed without pausing its writes, and counted so.
    const metrics = (await t.req('GET', '/metrics', undefined, null)).body as string;
    expect(Number(/^domicile_replication_checkpoints_total\{region="moon-base",how="quiet"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    expect(metrics).not.toMatch(/^domicile_replication_checkpoints_total\{region="moon-base",how="held"\}/m);
  });

  it('erase stops the shipper and removes every object of the tenant', async () => {
    const id = 'r-beta';
    expect((await keys(store(), `tenants/${id}/`)).length).toBeGreaterThan(0);
    expect((await t.req('DELETE', `/v1/tenants/${id}`)).status).toBe(200);
    expect(await keys(store(), `tenants/${id}/`)).toEqual([]);
    expect(t.rt.replicator!.status(id)).toBeNull();
    // Nothing lands afterwards either.
    await new Promise((r) => setTimeout(r, 300));
    expect(await keys(store(), `tenants/${id}/`)).toEqual([]);
  });
});

describe('DOMICILE_REPLICATION=off', () => {
  it('ships nothing and reports mode off', async () => {
    const t = await testApp({ DOMICILE_REPLICATION: 'off' });
    try {
      expect((await t.req('POST', '/v1/tenants', { id: 'quiet', residency: 'moon' })).status).toBe(201);
      expect((await t.req('POST', '/v1/tenants/quiet/query', { sql: 'CREATE TABLE x (a)' })).status).toBe(200);
      expect(t.rt.replicator).toBeUndefined();
      expect((await t.req('GET', '/v1/tenants/quiet')).body.replication).toEqual({ mode: 'off', lagMs: 0, lastTxid: null, replicatedTxid: null });
      expect(await keys(t.rt.bucketFor('moon-base')!, 'tenants/')).toEqual([]);
    } finally {
      await t.close();
    }
  });
});

describe('kill -9 of domicile serve after acknowledged async writes', () => {
  let s: DomicileServer;
  beforeAll(async () => { s = await startDomicile(); }, 30_000);
  afterAll(async () => s?.dispose());

  it('resumes the same generation after a restart: no gap, no duplicate, restore equals live', async () => {
    const id = 'crashy';
    const created = await s.api('POST', '/v1/tenants', { id, residency: 'us' });
    expect(created.status).toBe(201);
    const q = (sql: string, params?: unknown[]) => s.api('POST', `/v1/tenants/${id}/query`, params ? { sql, params } : { sql });
    expect((await q('CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT, b BLOB)')).status).toBe(200);
    for (let i = 1; i <= 20; i++) expect((await q('INSERT INTO kv (id, v) VALUES (?, ?)', [i, `row ${i}`])).status).toBe(200);
    const store = openObjectStore(`file://${path.join(s.dataDir, 'buckets', 'us-east')}`);
    try {
      // Wait until these are shipped, then write more and kill at once (some of these are not shipped yet).
      await waitFor(async () => {
        const r = (await s.api('GET', `/v1/tenants/${id}`)).body.replication;
        return r.replicatedTxid !== null && r.replicatedTxid === r.lastTxid && r.lagMs === 0;
      });
      for (let i = 21; i <= 60; i++) expect((await q('INSERT INTO kv (id, v) VALUES (?, ?)', [i, `row ${i}`])).status).toBe(200);
      await s.kill();
      await s.restart();
      const live = (await q('SELECT id, v, length(b) FROM kv ORDER BY id')).body.rows as unknown[][];
      expect(live.length).toBe(60);
      const inc = (await keys(store, `tenants/${id}/`))[0]!.split('/')[2]!;
      let last: Awaited<ReturnType<typeof restoredRows>> | undefined;
      await waitFor(async () => {
        last = await restoredRows(store, id, inc);
        return last.rows.length === 60;
      });
      expect(last!.rows).toEqual(live);
      expect(last!.generations).toBe(1);
      // Graceful stop ships too, and the next start continues the same generation.
      for (let i = 61; i <= 65; i++) expect((await q('INSERT INTO kv (id, v) VALUES (?, ?)', [i, `row ${i}`])).status).toBe(200);
      expect(await s.stop()).toBe(0);
      const afterStop = await restoredRows(store, id, inc);
      expect(afterStop.rows.length).toBe(65);
      expect(afterStop.generations).toBe(1);
      await s.restart();
      expect((await q('INSERT INTO kv (id, v) VALUES (?, ?)', [66, 'row 66'])).status).toBe(200);
      await waitFor(async () => (await restoredRows(store, id, inc)).rows.length === 66);
      expect((await restoredRows(store, id, inc)).generations).toBe(1);
    } finally {
      store.close();
    }
  }, 90_000);
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error('timed out waiting for replication');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('async replication to an S3 bucket (s3rver), through an outage', () => {
  let s3: S3Server;
  let t: TestApp;
  let env: Awaited<ReturnType<typeof s3TestApp>>;
  beforeAll(async () => {
    env = await s3TestApp('repl');
    ({ s3, t } = env);
  }, 30_000);
  afterAll(async () => {
    await env?.close();
  });

  it('keeps accepting async writes while the bucket is down, shows the lag, and catches up after', async () => {
    const q = (sql: string, params?: unknown[]) => t.req('POST', '/v1/tenants/s3t/query', params ? { sql, params } : { sql });
    expect((await t.req('POST', '/v1/tenants', { id: 's3t', residency: 'moon' })).status).toBe(201);
    expect((await q('CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT, b BLOB)')).status).toBe(200);
    for (let i = 1; i <= 10; i++) expect((await q('INSERT INTO kv (id, v) VALUES (?, ?)', [i, `r${i}`])).status).toBe(200);
    expect(await t.rt.replicator!.flush()).toBe(true);
    // Every segment put is counted, as a lean request or through the SDK command (docs/object-store.md,
    // "S3 puts"). Which one is not asserted here: on a loaded CI box a lean attempt can miss this app's
    // 500 ms connect timeout and hand its put to the command (the object-store tests check the paths).
    const before = await s3Puts();
    expect(before.lean + before.sdk).toBeGreaterThan(0);
    expect([0, 1]).toContain(before.off);
    await s3.kill();
    for (let i = 11; i <= 20; i++) expect((await q('INSERT INTO kv (id, v) VALUES (?, ?)', [i, `r${i}`])).status).toBe(200);
    // The next pass (after the shipping interval) captures the new writes and fails to store them.
    let during: { lagMs: number; lastTxid: number | null; replicatedTxid: number | null } | undefined;
    await waitFor(async () => {
      during = (await t.req('GET', '/v1/tenants/s3t')).body.replication;
      return (during!.lastTxid ?? 0) > (during!.replicatedTxid ?? 0);
    }, 10_000);
    expect(during!.lagMs).toBeGreaterThan(0);
    expect(during!.replicatedTxid).toBeLessThan(during!.lastTxid ?? Infinity);
    await s3.restart();
    expect(await t.rt.replicator!.flush(20_000)).toBe(true);
    const inc = (await t.rt.directory.get('s3t'))!.incarnation;
    const r = await restoredRows(t.rt.bucketFor('moon-base')!, 's3t', inc);
    expect(r.rows).toEqual((await q('SELECT id, v, length(b) FROM kv ORDER BY id')).body.rows);
    expect(r.rows.length).toBe(20);
    // The passes during the outage sent their puts through the SDK command (a failed or suspended lean
    // attempt hands it over), and the catch-up's puts are counted too.
    const after = await s3Puts();
    expect(after.sdk).toBeGreaterThan(before.sdk);
    expect(after.lean + after.sdk).toBeGreaterThan(before.lean + before.sdk + 1);
    expect([0, 1]).toContain(after.off);
  }, 60_000);

  /** The node's counters of segment puts into moon-base's S3 bucket, by how they were sent. */
  async function s3Puts(): Promise<{ lean: number; sdk: number; off: number }> {
    const text = (await t.req('GET', '/metrics', undefined, null)).body as string;
    const read = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    return {
      lean: read(/^domicile_replication_s3_puts_total\{region="moon-base",path="lean"\} (\d+)/m),
      sdk: read(/^domicile_replication_s3_puts_total\{region="moon-base",path="sdk"\} (\d+)/m),
      off: read(/^domicile_replication_s3_lean_puts_off\{region="moon-base"\} (\d+)/m),
    };
  }
});

describe('configuration', () => {
  it('ships as many tenants at once as DOMICILE_SHIP_CONCURRENCY says (default 8)', async () => {
    const a = await testApp({});
    const b = await testApp({ DOMICILE_SHIP_CONCURRENCY: '32' });
    try {
      expect(a.rt.replicator!.concurrency).toBe(8);
      expect(b.rt.replicator!.concurrency).toBe(32);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('file descriptors of idle tenants', () => {
  it('holds no file descriptor per replicated tenant once its shipping is done (the handle cache bounds open files)', async () => {
    const { readdirSync } = await import('node:fs');
    const openFds = () => readdirSync('/proc/self/fd').length;
    const t = await testApp({ DOMICILE_MAX_OPEN_SHARDS: '8' });
    try {
      // One tenant first: the node's constant descriptors (the shipper thread's event loop among them) count before.
      expect((await t.req('POST', '/v1/tenants', { id: 'fd-warm', residency: 'moon' })).status).toBe(201);
      expect((await t.req('POST', '/v1/tenants/fd-warm/query', { sql: 'CREATE TABLE kv (id INTEGER PRIMARY KEY)' })).status).toBe(200);
      expect(await t.rt.replicator!.flush()).toBe(true);
      const before = openFds();
      for (let i = 0; i < 60; i++) {
        const id = `fd${i}`;
        expect((await t.req('POST', '/v1/tenants', { id, residency: 'moon' })).status).toBe(201);
        expect((await t.req('POST', `/v1/tenants/${id}/query`, { sql: 'CREATE TABLE kv (id INTEGER PRIMARY KEY)' })).status).toBe(200);
      }
      expect(await t.rt.replicator!.flush()).toBe(true);
      // 60 tenants shipped; a shipper holding its database open would add ~60 descriptors.
      expect(openFds() - before).toBeLessThan(30);
    } finally {
      await t.close();
    }
  }, 60_000);
});
