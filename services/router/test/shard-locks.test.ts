// A replicating node never drops SQLite's locks on the shards it serves
// (@domicile/shard live-file.ts, docs/shards.md "Files and locks"). Closing
// any descriptor of a live database file drops the locks this process holds
// on it; the replicator reads those files itself (a generation's copy, the
// shipper's page reads, a resume's hashing) and a move's follower too. After
// each of those, another process that opens the shard in
// `locking_mode=EXCLUSIVE` must still be refused (before the fix it got in,
// wrote, and removed the -wal when it closed).
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exclusiveWriteFromAnotherProcess } from '@domicile/testkit';
import { testApp, type TestApp } from './harness.ts';

const BETTER_SQLITE3 = createRequire(import.meta.url).resolve('better-sqlite3');

describe('SQLite locks on served shards', () => {
  let t: TestApp;
  const q = (tenant: string, sql: string, params?: unknown[]) => t.req('POST', `/v1/tenants/${tenant}/query`, params ? { sql, params } : { sql });
  const locked = async (tenant: string) => exclusiveWriteFromAnotherProcess(t.rt.shardRef((await t.rt.directory.get(tenant))!).path, BETTER_SQLITE3);

  /** A tenant with a table of `rows` rows, shipped. */
  async function tenantWithRows(id: string, placement: { residency: string; region?: string }, rows: number): Promise<void> {
    expect((await t.req('POST', '/v1/tenants', { id, ...placement })).status).toBe(201);
    expect((await q(id, 'CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)')).status).toBe(200);
    for (let i = 0; i < rows; i++) expect((await q(id, 'INSERT INTO kv (v) VALUES (?)', [`row ${i}`])).status).toBe(200);
    expect(await t.rt.replicator!.flush()).toBe(true);
  }

  beforeAll(async () => {
    // A snapshot interval of 1 ms: every shipped pass starts a new generation (a copy of the live file each time).
    t = await testApp({ DOMICILE_SNAPSHOT_INTERVAL: '1ms', DOMICILE_SHIP_INTERVAL: '20ms' });
  }, 30_000);
  afterAll(async () => t?.close());

  it('stay through generation starts, captures and snapshot rotations', async () => {
    expect((await t.req('POST', '/v1/tenants', { id: 'lock-co', residency: 'moon' })).status).toBe(201);
    expect((await q('lock-co', 'CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)')).status).toBe(200);
    for (let i = 0; i < 30; i++) {
      expect((await q('lock-co', 'INSERT INTO kv (v) VALUES (?)', [`row ${i}`])).status).toBe(200);
      if (i % 10 === 9) expect(await t.rt.replicator!.flush()).toBe(true);
    }
    expect(await t.rt.replicator!.flush()).toBe(true);
    const gens = (await t.req('GET', '/v1/tenants/lock-co/backups')).body;
    expect(gens.generations.length).toBeGreaterThan(1); // rotations happened (each a copy of the live file)
    expect(await locked('lock-co')).toBe('locked');
    // Nothing got in: the rows are all there and no stranger's table.
    expect((await q('lock-co', 'SELECT count(*) FROM kv')).body.rows).toEqual([[30]]);
    expect((await q('lock-co', "SELECT count(*) FROM sqlite_master WHERE name = 'intruder'")).body.rows).toEqual([[0]]);
  }, 60_000);

  it('stay on the source after a move that read it (copy, catch-up) and then failed', async () => {
    await tenantWithRows('stay-co', { residency: 'mars', region: 'mars-north' }, 10);
    t.rt.moves.failAt = 'catching-up'; // before the fence, which would close (and so renew) the handles
    try {
      const res = await t.req('POST', '/v1/tenants/stay-co/move?wait=1', { to: 'mars-south' });
      expect(res.body.move).toMatchObject({ phase: 'aborted' });
    } finally {
      t.rt.moves.failAt = undefined;
    }
    expect((await q('stay-co', 'INSERT INTO kv (v) VALUES (?)', ['after'])).status).toBe(200);
    expect(await locked('stay-co')).toBe('locked');
    expect((await q('stay-co', 'SELECT count(*) FROM kv')).body.rows).toEqual([[11]]);
  }, 60_000);

  it('stay on the target after a move, and the source went with the move', async () => {
    await tenantWithRows('mover-co', { residency: 'mars', region: 'mars-north' }, 10);
    expect(await locked('mover-co')).toBe('locked');
    const moved = await t.req('POST', '/v1/tenants/mover-co/move?wait=1', { to: 'mars-south' });
    expect(moved.status).toBe(200);
    expect(moved.body.phase).toBe('done');
    for (let i = 10; i < 20; i++) expect((await q('mover-co', 'INSERT INTO kv (v) VALUES (?)', [`row ${i}`])).status).toBe(200);
    expect(await t.rt.replicator!.flush()).toBe(true);
    expect(await locked('mover-co')).toBe('locked');
    expect((await q('mover-co', 'SELECT count(*) FROM kv')).body.rows).toEqual([[20]]);
  }, 60_000);
});
