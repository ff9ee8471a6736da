// Sync durability (DESIGN §8): a sync tenant's write is answered only once its
// commit is in the region's bucket; concurrent writes share uploads; while the
// bucket is down writes are refused before they run (reads still work), a
// write whose upload fails after its commit says `committedLocally: true`, and
// nothing acknowledged or committed locally is lost when the bucket returns.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openObjectStore, type ObjectStore } from '@domicile/object-store';
import { listGenerations, restore } from '@domicile/replication';
import type { S3Server } from '@domicile/testkit';
import { s3TestApp, testApp, type TestApp } from './harness.ts';

const scratch = mkdtempSync(path.join(tmpdir(), 'domicile-sync-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Offline restore of the newest generation: the ids in `kv`. */
async function restoredIds(store: ObjectStore, tenant: string, incarnation: string): Promise<number[]> {
  const g = (await listGenerations(store, tenant, incarnation)).at(-1)!;
  const outPath = path.join(scratch, `${tenant}-${Math.random().toString(16).slice(2)}.db`);
  await restore({ store, ref: { tenant, incarnation, epoch: g.epoch, generation: g.generation }, outPath });
  const db = new Database(outPath, { readonly: true });
  try {
    return db.prepare('SELECT id FROM kv ORDER BY id').pluck().all() as number[];
  } finally {
    db.close();
  }
}

describe('sync durability on the filesystem bucket', () => {
  let t: TestApp;
  beforeAll(async () => { t = await testApp(); });
  afterAll(async () => { await t?.close(); });

  it('answers a sync write only when the bucket holds it; concurrent writes share uploads', async () => {
    expect((await t.req('POST', '/v1/tenants', { id: 'syncy', residency: 'moon', durability: 'sync' })).body.durability).toBe('sync');
    const q = (sql: string, params?: unknown[]) => t.req('POST', '/v1/tenants/syncy/query', params ? { sql, params } : { sql });
    expect((await q('CREATE TABLE kv (id INTEGER PRIMARY KEY)')).status).toBe(200);
    let prev = 0;
    for (let i = 1; i <= 20; i++) {
      expect((await q('INSERT INTO kv VALUES (?)', [i])).status).toBe(200);
      // At the moment of the answer, the replicator has the commit acknowledged by the bucket.
      const s = t.rt.replicator!.status('syncy')!;
      expect(s.replicatedTxid).toBe(s.lastTxid);
      expect(s.replicatedTxid).toBeGreaterThan(prev);
      prev = s.replicatedTxid!;
    }
    const before = t.rt.replicator!.status('syncy')!.replicatedTxid!;
    const burst = await Promise.all(Array.from({ length: 40 }, (_, k) => q('INSERT INTO kv VALUES (?)', [100 + k])));
    expect(burst.map((r) => r.status)).toEqual(Array(40).fill(200));
    const after = t.rt.replicator!.status('syncy')!;
    // Group commit may put several writes in one transaction (one txid): at least one more, all shipped.
    expect(after.replicatedTxid).toBeGreaterThan(before);
    expect(after.replicatedTxid).toBe(after.lastTxid);
    // Fewer segments than writes: the burst shared uploads.
    const store = t.rt.bucketFor('moon-base')!;
    const rec = await t.rt.directory.get('syncy');
    let segs = 0;
    for await (const e of store.list(`tenants/syncy/${rec!.incarnation}/`)) if (e.key.endsWith('.seg')) segs++;
    expect(segs).toBeLessThan(20 + 1 + 40);
    expect(await restoredIds(store, 'syncy', rec!.incarnation)).toEqual([...Array.from({ length: 20 }, (_, i) => i + 1), ...Array.from({ length: 40 }, (_, k) => 100 + k)]);
  });

  it('Hrana: an interactive transaction committed in a pipeline is in the bucket when the pipeline is answered', async () => {
    const before = t.rt.replicator!.status('syncy')!.replicatedTxid!;
    const exec = (sql: string) => ({ type: 'execute', stmt: { sql } });
    const r = await t.req('POST', '/v1/tenants/syncy/v2/pipeline', { baton: null, requests: [exec('BEGIN'), exec('INSERT INTO kv VALUES (5000)'), exec('COMMIT')] });
    expect(r.status).toBe(200);
    expect(r.body.results.map((x: { type: string }) => x.type)).toEqual(['ok', 'ok', 'ok']);
    expect(t.rt.replicator!.status('syncy')!.replicatedTxid).toBe(before + 1);
  });

  it('leaves async tenants answering before the upload (lag may be non-zero) and reports the mode', async () => {
    expect((await t.req('POST', '/v1/tenants', { id: 'asyncy', residency: 'moon' })).body.durability).toBe('async');
    expect((await t.req('POST', '/v1/tenants/asyncy/query', { sql: 'CREATE TABLE kv (id INTEGER PRIMARY KEY)' })).status).toBe(200);
    expect((await t.req('GET', '/v1/tenants/asyncy')).body.replication.mode).toBe('async');
    // Async commits made within the shipping interval (DOMICILE_SHIP_INTERVAL, 500 ms) share segments.
    const started = Date.now();
    for (let i = 0; i < 50; i++) expect((await t.req('POST', '/v1/tenants/asyncy/query', { sql: 'INSERT INTO kv VALUES (?)', params: [i] })).status).toBe(200);
    const elapsed = Date.now() - started;
    expect(await t.rt.replicator!.flush()).toBe(true);
    const rec = await t.rt.directory.get('asyncy');
    let segs = 0;
    for await (const e of t.rt.bucketFor('moon-base')!.list(`tenants/asyncy/${rec!.incarnation}/`)) if (e.key.endsWith('.seg')) segs++;
    expect(segs).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 3);
    expect((await t.req('GET', '/v1/tenants/syncy')).body.replication.mode).toBe('sync');
  });
});

describe('sync durability through a bucket outage (s3rver)', () => {
  let s3: S3Server;
  let t: TestApp;
  let store: ObjectStore;
  let env: Awaited<ReturnType<typeof s3TestApp>>;
  beforeAll(async () => {
    env = await s3TestApp('sync');
    ({ s3, t } = env);
    store = openObjectStore(env.url);
  }, 30_000);
  afterAll(async () => {
    store?.close?.();
    await env?.close();
  });

  it('refuses writes up front while the bucket is down, says committedLocally when an upload fails after the commit, loses nothing', async () => {
    const q = (sql: string, params?: unknown[], headers: Record<string, string> = {}) =>
      t.req('POST', '/v1/tenants/s3sync/query', params ? { sql, params } : { sql }, undefined, headers);
    expect((await t.req('POST', '/v1/tenants', { id: 's3sync', residency: 'moon', durability: 'sync' })).status).toBe(201);
    expect((await q('CREATE TABLE kv (id INTEGER PRIMARY KEY)')).status).toBe(200);
    for (let i = 1; i <= 5; i++) expect((await q('INSERT INTO kv VALUES (?)', [i])).status).toBe(200);

    await s3.kill();
    // The first write after the outage commits locally, then its upload fails.
    const local = await q('INSERT INTO kv VALUES (6)', undefined, { 'idempotency-key': 'six' });
    expect(local.status).toBe(503);
    expect(local.body.error).toMatchObject({ code: 'REPLICATION_UNAVAILABLE', committedLocally: true });
    expect(local.headers['retry-after']).toBeDefined();
    // Now the bucket is known down: writes are refused before they run, reads work.
    const refused = await q('INSERT INTO kv VALUES (7)');
    expect(refused.status).toBe(503);
    expect(refused.body.error).toMatchObject({ code: 'REPLICATION_UNAVAILABLE', committedLocally: false });
    const batchRefused = await t.req('POST', '/v1/tenants/s3sync/batch', { statements: [{ sql: 'INSERT INTO kv VALUES (8)' }] });
    expect(batchRefused.body.error).toMatchObject({ code: 'REPLICATION_UNAVAILABLE', committedLocally: false });
    const hrana = await t.req('POST', '/v1/tenants/s3sync/v2/pipeline', { baton: null, requests: [{ type: 'execute', stmt: { sql: 'INSERT INTO kv VALUES (8)' } }] });
    expect(hrana.status).toBe(503);
    expect(hrana.body).toMatchObject({ code: 'REPLICATION_UNAVAILABLE' });
    const read = await q('SELECT count(*) FROM kv');
    expect(read.status).toBe(200);
    expect(read.body.rows).toEqual([[6]]);
    // A retry with the same key is not run twice and is still not acknowledged while the bucket is down.
    const retryDown = await q('INSERT INTO kv VALUES (6)', undefined, { 'idempotency-key': 'six' });
    expect(retryDown.body.error).toMatchObject({ code: 'REPLICATION_UNAVAILABLE' });

    await s3.restart();
    // Writes are accepted again once the bucket answers (its probe, or a tenant's retry). The same key on
    // every try: a try that committed locally and then failed its upload is not run a second time.
    let ok = false;
    for (let i = 0; i < 100 && !ok; i++) {
      const r = await q('INSERT INTO kv VALUES (9)', undefined, { 'idempotency-key': 'nine' });
      ok = r.status === 200;
      if (!ok) {
        expect(r.body.error.code).toBe('REPLICATION_UNAVAILABLE');
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    expect(ok).toBe(true);
    const retry = await q('INSERT INTO kv VALUES (6)', undefined, { 'idempotency-key': 'six' });
    expect(retry.status).toBe(200);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    const rec = await t.rt.directory.get('s3sync');
    expect(await restoredIds(store, 's3sync', rec!.incarnation)).toEqual([1, 2, 3, 4, 5, 6, 9]);
  }, 60_000);
});

describe('checkpoints under steady writes', () => {
  let t: TestApp;
  // Held past 8 MiB (the default, 2 × 4 MiB; explicit so that this test's 25 MiB of writes must be checkpointed whatever the default).
  // The WAL peaks at the force size plus what the writers add before the next pass sees it: ~6 MiB per
  // 500 ms (the default interval) at this test's rate, which left the 16 MiB bound below a few hundred KB
  // of margin (it failed once by 0.4 MB). 100 ms keeps the overshoot to ~1–2 MiB.
  beforeAll(async () => { t = await testApp({ DOMICILE_CHECKPOINT_FORCE_BYTES: '8MiB', DOMICILE_SHIP_INTERVAL: '100ms' }); });
  afterAll(async () => { await t?.close(); });

  it('keeps a busy tenant\'s WAL bounded (the checkpoint holds the tenant briefly instead of being starved) and loses nothing', async () => {
    const { statSync } = await import('node:fs');
    expect((await t.req('POST', '/v1/tenants', { id: 'busywal', residency: 'moon' })).status).toBe(201);
    expect((await t.req('POST', '/v1/tenants/busywal/query', { sql: 'CREATE TABLE kv (id INTEGER PRIMARY KEY, b BLOB)' })).status).toBe(200);
    const walPath = `${t.rt.shardRef((await t.rt.directory.get('busywal'))!).path}-wal`;
    // The generation has begun (its snapshot) before the load starts.
    expect(await t.rt.replicator!.flush()).toBe(true);
    let maxWal = 0;
    let writing = true;
    const sampler = (async () => {
      while (writing) {
        try { maxWal = Math.max(maxWal, statSync(walPath).size); } catch { /* none yet */ }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    let next = 0;
    const writer = async () => {
      for (let i = 0; i < 100; i++) {
        const id = ++next;
        const r = await t.req('POST', '/v1/tenants/busywal/query', { sql: 'INSERT INTO kv VALUES (?, randomblob(65536))', params: [id] });
        expect(r.status).toBe(200);
        await new Promise((res) => setTimeout(res, 15)); // steady, not one burst: several shipping intervals pass
      }
    };
    await Promise.all([writer(), writer(), writer(), writer()]);
    writing = false;
    await sampler;
    // 400 × 64 KiB ≈ 25 MiB written over ~2 s; without a checkpoint the WAL would hold all of it.
    expect(maxWal).toBeLessThan(16 << 20);
    expect(await t.rt.replicator!.flush()).toBe(true);
    const rec = await t.rt.directory.get('busywal');
    const store = t.rt.bucketFor('moon-base')!;
    expect(await restoredIds(store, 'busywal', rec!.incarnation)).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
  }, 60_000);
});
