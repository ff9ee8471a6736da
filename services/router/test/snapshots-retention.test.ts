// The snapshot schedule and retention (DESIGN §8): a generation older than
// DOMICILE_SNAPSHOT_INTERVAL is followed by a new one (fresh snapshot) after
// the next write; generations no longer needed to restore any moment of the
// DOMICILE_RETENTION window are deleted; what stays restores correctly.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generationTime, listGenerations, restore } from '@domicile/replication';
import { testApp, type TestApp } from './harness.ts';

const scratch = mkdtempSync(path.join(tmpdir(), 'domicile-retention-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('scheduled snapshots and retention', () => {
  let t: TestApp;
  beforeAll(async () => { t = await testApp({ DOMICILE_SNAPSHOT_INTERVAL: '300ms', DOMICILE_RETENTION: '1s' }); });
  afterAll(async () => { await t?.close(); });

  it('starts a new generation per interval, prunes outside the window, and every kept generation restores', async () => {
    const q = (sql: string, params?: unknown[]) => t.req('POST', '/v1/tenants/rot/query', params ? { sql, params } : { sql });
    expect((await t.req('POST', '/v1/tenants', { id: 'rot', residency: 'moon' })).status).toBe(201);
    expect((await q('CREATE TABLE kv (id INTEGER PRIMARY KEY)')).status).toBe(200);
    const store = t.rt.bucketFor('moon-base')!;
    const inc = (await t.rt.directory.get('rot'))!.incarnation;
    const started = Date.now();
    let id = 0;
    const seenGenerations = new Set<string>();
    // At least ~2.4 s of writes (about 8 intervals, so retention (1 s) must have pruned the early ones), and
    // on a loaded machine, where a round of write + flush + listing takes longer, until 6 generations were
    // seen (bounded: the assertions below still decide).
    while (Date.now() - started < 2400 || (seenGenerations.size < 6 && Date.now() - started < 20_000)) {
      expect((await q('INSERT INTO kv VALUES (?)', [++id])).status).toBe(200);
      expect(await t.rt.replicator!.flush(10_000)).toBe(true);
      for (const g of await listGenerations(store, 'rot', inc)) seenGenerations.add(g.generation);
      await sleep(60);
    }
    const gens = await listGenerations(store, 'rot', inc);
    expect(seenGenerations.size).toBeGreaterThanOrEqual(5);
    // Pruned: fewer kept than ever existed, and the oldest kept one is recent.
    expect(gens.length).toBeLessThan(seenGenerations.size);
    const cutoff = Date.now() - 1000;
    // The window is covered: the second-oldest kept generation started after the cutoff (minus the last rotation's slack).
    expect(generationTime(gens[0]!.generation)).toBeGreaterThan(cutoff - 1500);
    // Each kept generation restores to its last txid, and the newest equals the live data.
    for (const g of gens) {
      const outPath = path.join(scratch, `${g.generation}.db`);
      const res = await restore({ store, ref: { tenant: 'rot', incarnation: inc, epoch: g.epoch, generation: g.generation }, outPath });
      expect(res.txid).toBe(g.lastTxid);
      const db = new Database(outPath, { readonly: true });
      const ids = db.prepare('SELECT id FROM kv ORDER BY id').pluck().all() as number[];
      db.close();
      expect(ids).toEqual(Array.from({ length: ids.length }, (_, i) => i + 1));
      expect(res.txid).toBe(ids.length + 1);
    }
    expect(gens.at(-1)!.lastTxid).toBe(id + 1);
  }, 45_000);
});
