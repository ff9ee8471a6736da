/**
 * Checkpoints that restart the log in place (`wal_checkpoint(RESTART)`, the
 * replicator's held checkpoints since 2026-12-07): the `-wal` keeps its size
 * and its old, folded frames until a write restarts it. The shipper must
 * continue the generation across that, its checkpoint mark must see every
 * new commit, and a node that stops between such a checkpoint and the next
 * write must resume the same generation, not begin a new one.
 */
import { copyFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { FsObjectStore } from '@domicile/object-store';
import { walChangedSince } from '@domicile/shard';
import { newGenerationId, type GenerationRef } from './keys.ts';
import { readGenerationTip, restore } from './restore.ts';
import { beginTestGeneration, createTestShard, dumpDatabase, tempDir } from './test-support.ts';
import { WalShipper } from './wal-shipper.ts';

const cleanups: Array<() => unknown> = [];
afterEach(() => { for (const c of cleanups.splice(0)) c(); });

async function setup() {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  const path = join(dir, 'acme.db');
  const shard = createTestShard(path, 'acme', 'inc-1');
  cleanups.unshift(() => shard.db.close());
  shard.write((db) => db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)'));
  const store = new FsObjectStore(join(dir, 'bucket'));
  const ref: GenerationRef = { tenant: 'acme', incarnation: 'inc-1', epoch: 1, generation: newGenerationId() };
  const shipper = await beginTestGeneration(shard, store, ref);
  cleanups.unshift(() => shipper.close());
  const insert = (name: string) => shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run(name));
  return { dir, path, shard, store, ref, shipper, insert };
}

/** Capture and store until nothing is left; returns the segments stored. */
async function ship(shipper: WalShipper, store: FsObjectStore): Promise<number> {
  let n = 0;
  for (;;) {
    const c = await shipper.captureAsync();
    if (c.kind === 'none') return n;
    if (c.kind !== 'segment') throw new Error(`unexpected capture ${c.kind}`);
    await store.put(c.key, c.bytes, { ifNoneMatch: true });
    shipper.acknowledge(c.maxTxid);
    n++;
  }
}

async function expectRestores(store: FsObjectStore, ref: GenerationRef, dir: string, live: string, txid: number): Promise<void> {
  const out = join(dir, `restored-${Math.random()}.db`);
  expect((await restore({ store, ref, outPath: out })).txid).toBe(txid);
  expect(dumpDatabase(out)).toEqual(dumpDatabase(live));
}

const restart = (db: Database.Database) => (db.pragma('wal_checkpoint(RESTART)') as Array<{ busy: number; log: number; checkpointed: number }>)[0]!;

describe('WalShipper across RESTART checkpoints', () => {
  it('continues the generation; the mark is the end of the shipped log and misses no commit, before or after the log restarts', async () => {
    const s = await setup();
    for (let i = 0; i < 20; i++) s.insert(`a${i}`);
    expect(await ship(s.shipper, s.store)).toBe(1);
    const wal = `${s.path}-wal`;
    const mark = s.shipper.checkpointMark();
    expect(mark).not.toBeNull();
    expect(mark!.offset).toBe(statSync(wal).size);
    expect(walChangedSince(wal, mark!)).toBe(false);
    s.insert('unshipped');
    expect(s.shipper.checkpointMark()).toBeNull(); // a commit not yet shipped
    expect(walChangedSince(wal, mark!)).toBe(true); // and the old mark sees it
    expect(await ship(s.shipper, s.store)).toBe(1);

    const size = statSync(wal).size;
    const folded = s.shipper.checkpointMark()!;
    expect(restart(s.shard.db).busy).toBe(0);
    s.shipper.noteCheckpoint({ busy: 0 });
    expect(statSync(wal).size).toBe(size); // RESTART keeps the file
    // Nothing new: the folded log is not reported as WAL to checkpoint again.
    expect(await s.shipper.captureAsync()).toMatchObject({ kind: 'none', walBytes: 0 });
    expect(walChangedSince(wal, folded)).toBe(false);

    s.insert('b'); // restarts the log over the old frames
    expect(statSync(wal).size).toBe(size);
    expect(walChangedSince(wal, folded)).toBe(true);
    expect(s.shipper.checkpointMark()).toBeNull();
    expect(await ship(s.shipper, s.store)).toBe(1);
    const fresh = s.shipper.checkpointMark()!;
    expect(fresh.salt1).not.toBe(folded.salt1);
    expect(fresh.offset).toBeLessThan(size);
    expect(walChangedSince(wal, fresh)).toBe(false);
    for (let i = 0; i < 3; i++) s.insert(`c${i}`);
    expect(walChangedSince(wal, fresh)).toBe(true);
    expect(await ship(s.shipper, s.store)).toBe(1);
    await expectRestores(s.store, s.ref, s.dir, s.path, s.shard.txid());
  });

  it('a node stopped right after a RESTART checkpoint resumes the same generation; SQLite then extends the folded log and the shipper follows', async () => {
    const s = await setup();
    for (let i = 0; i < 10; i++) s.insert(`a${i}`);
    await ship(s.shipper, s.store);
    expect(s.shipper.checkpointMark()).not.toBeNull();
    expect(restart(s.shard.db).busy).toBe(0);
    s.shipper.noteCheckpoint({ busy: 0 });
    s.shipper.close();
    // The node dies here: its files as they are on disk (no -shm: SQLite recovers the log on open).
    const crashed = join(s.dir, 'crashed.db');
    copyFileSync(s.path, crashed);
    copyFileSync(`${s.path}-wal`, `${crashed}-wal`);
    const tip = (await readGenerationTip(s.store, s.ref))!;
    expect(tip.txid).toBe(s.shard.txid());
    const resumed = WalShipper.resume({ dbPath: crashed, ...s.ref }, tip);
    expect(resumed).not.toBeNull();
    cleanups.unshift(() => resumed!.close());
    expect(await resumed!.captureAsync()).toMatchObject({ kind: 'none', walBytes: 0 });

    const b = new Database(crashed);
    cleanups.unshift(() => b.close());
    b.pragma('wal_autocheckpoint = 0');
    const walBefore = statSync(`${crashed}-wal`).size;
    const write = (name: string) => b.transaction(() => {
      b.prepare('INSERT INTO items (name) VALUES (?)').run(name);
      b.prepare('UPDATE _domicile_meta SET txid = txid + 1 WHERE id = 1').run();
    })();
    write('after the restart');
    expect(statSync(`${crashed}-wal`).size).toBeGreaterThan(walBefore); // appended to the recovered log, not restarted
    expect(await ship(resumed!, s.store)).toBe(1);
    write('and one more');
    expect(await ship(resumed!, s.store)).toBe(1);
    await expectRestores(s.store, s.ref, s.dir, crashed, tip.txid + 2);
  });

  it('refuses to resume when the folded log was extended by commits that were never shipped and the file lacks them', async () => {
    const s = await setup();
    for (let i = 0; i < 10; i++) s.insert(`a${i}`);
    await ship(s.shipper, s.store);
    expect(restart(s.shard.db).busy).toBe(0);
    s.shipper.close();
    const crashed = join(s.dir, 'crashed.db');
    copyFileSync(s.path, crashed);
    copyFileSync(`${s.path}-wal`, `${crashed}-wal`);
    const b = new Database(crashed);
    cleanups.unshift(() => b.close());
    b.pragma('wal_autocheckpoint = 0');
    b.transaction(() => {
      b.prepare('INSERT INTO items (name) VALUES (?)').run('never shipped');
      b.prepare('UPDATE _domicile_meta SET txid = txid + 1 WHERE id = 1').run();
    })();
    // The log now holds the folded commits and a new one behind them: the shipper cannot tell where
    // the new ones start by txid (the first commit of the log is older than the tip), so it begins anew.
    const tip = (await readGenerationTip(s.store, s.ref))!;
    expect(WalShipper.resume({ dbPath: crashed, ...s.ref }, tip)).toBeNull();
  });
});
