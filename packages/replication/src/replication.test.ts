import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FsObjectStore } from '@domicile/object-store';
import { afterEach, describe, expect, it } from 'vitest';
import { generationPrefix, newGenerationId, snapshotKey, type GenerationRef } from './keys.ts';
import { listGenerations, readGenerationTip, restore } from './restore.ts';
import { createSnapshot } from './snapshot.ts';
import { createTestShard, dumpDatabase, tempDir, type TestShard } from './test-support.ts';
import { readWal } from './wal-reader.ts';
import { WalShipper } from './wal-shipper.ts';

let cleanups: Array<() => void> = [];
afterEach(() => { for (const c of cleanups) c(); cleanups = []; });

const TENANT = 'acme';
const INC = 'inc-1';

async function setup() {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  const path = join(dir, 'acme.db');
  const shard = createTestShard(path, TENANT, INC);
  cleanups.unshift(() => { if (shard.db.open) shard.db.close(); });
  shard.write((db) => db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, payload BLOB)'));
  const store = new FsObjectStore(join(dir, 'bucket'));
  const ref: GenerationRef = { tenant: TENANT, incarnation: INC, epoch: 1, generation: newGenerationId() };
  return { dir, path, shard, store, ref };
}

async function beginGeneration(shard: TestShard, store: FsObjectStore, ref: GenerationRef, path: string): Promise<WalShipper> {
  expect(shard.checkpoint().busy).toBe(0);
  const shipper = WalShipper.beginGeneration({ dbPath: path, ...ref });
  cleanups.unshift(() => shipper.close());
  const release = shipper.hold();
  const snap = createSnapshot({ dbPath: path, ...ref, checksum: shipper.checksum, pageHash: shipper.pageHash });
  await store.put(snapshotKey(ref, snap.header.txid), snap.stream, { ifNoneMatch: true });
  await snap.done;
  release();
  return shipper;
}

async function ship(shipper: WalShipper, store: FsObjectStore): Promise<number> {
  const c = shipper.capture();
  if (c.kind === 'restart') throw new Error(`restart: ${c.reason}`);
  if (c.kind === 'none') return 0;
  await store.put(c.key, c.bytes, { ifNoneMatch: true });
  shipper.acknowledge(c.maxTxid);
  return c.maxTxid - c.minTxid + 1;
}

function snapshotOfSource(path: string, dir: string, name: string): Record<string, unknown[]> {
  void dir; void name;
  return dumpDatabase(path);
}

describe('shipper + restore', () => {
  it('restores the latest state and every intermediate txid (PITR), checksums and integrity_check passing', async () => {
    const { dir, path, shard, store, ref } = await setup();
    const shipper = await beginGeneration(shard, store, ref, path);
    const expected = new Map<number, Record<string, unknown[]>>();
    expected.set(shard.txid(), snapshotOfSource(path, dir, 'base'));
    const ins = shard.db.prepare('INSERT INTO items (name, payload) VALUES (?, ?)');
    let t = 1_700_000_000_000;
    for (let i = 0; i < 20; i++) {
      shard.write((db) => {
        for (let j = 0; j < 1 + (i % 7) * 5; j++) ins.run(`item ${i}/${j}`, randomBytes(i % 3 === 0 ? 3000 : 50));
        if (i % 5 === 4) db.prepare('DELETE FROM items WHERE id % 3 = 0').run();
        if (i === 12) db.exec('CREATE INDEX items_name ON items(name)');
      });
      expected.set(shard.txid(), dumpDatabase(path));
      // Ship after most commits, sometimes after a group of them.
      if (i % 4 !== 1) {
        t += 1000;
        await ship(shipper, store);
      }
      // Checkpoint whenever allowed, as the worker will.
      if (i % 6 === 5 && shipper.checkpointAllowed()) shipper.noteCheckpoint(shard.checkpoint());
    }
    await ship(shipper, store);
    const last = shard.txid();
    expect(shipper.txid).toBe(last);

    const out = join(dir, 'restored.db');
    const r = await restore({ store, ref, outPath: out });
    expect(r.txid).toBe(last);
    expect(r.checksum).toBe(shipper.checksum);
    expect(dumpDatabase(out)).toEqual(expected.get(last));
    expect(r.bytes).toBe(statSync(out).size);

    for (const [txid, dump] of expected) {
      const o = join(dir, `r-${txid}.db`);
      const rr = await restore({ store, ref, outPath: o, target: { txid } });
      expect(rr.txid).toBe(txid);
      expect(dumpDatabase(o), `txid ${txid}`).toEqual(dump);
    }
  });

  it('two shippers on one thread share the WAL read buffer: a capture still encoding is not changed by the next one', async () => {
    const a = await setup();
    const b = await setup();
    const sa = await beginGeneration(a.shard, a.store, a.ref, a.path);
    const sb = await beginGeneration(b.shard, b.store, b.ref, b.path);
    const insA = a.shard.db.prepare('INSERT INTO items (name, payload) VALUES (?, ?)');
    const insB = b.shard.db.prepare('INSERT INTO items (name, payload) VALUES (?, ?)');
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 10; i++) {
        a.shard.write(() => insA.run(`a ${round}/${i}`, randomBytes(200 + i * 300)));
        b.shard.write(() => insB.run(`b ${round}/${i}`, randomBytes(900)));
      }
      // A's page images are compressed on the thread pool while B reads its WAL through the same buffer.
      const pending = sa.captureAsync();
      const cb = sb.capture();
      const ca = await pending;
      for (const [c, st, sh] of [[ca, a.store, sa], [cb, b.store, sb]] as const) {
        if (c.kind !== 'segment') throw new Error(c.kind);
        await st.put(c.key, c.bytes, { ifNoneMatch: true });
        sh.acknowledge(c.maxTxid);
      }
    }
    for (const x of [a, b]) {
      const out = join(x.dir, 'restored.db');
      const r = await restore({ store: x.store, ref: x.ref, outPath: out });
      expect(r.txid).toBe(x.shard.txid());
      expect(dumpDatabase(out)).toEqual(dumpDatabase(x.path));
    }
  });

  it('attributes a VACUUM (autocommit, txid bumped in its own transaction) to the next txid', async () => {
    const { dir, path, shard, store, ref } = await setup();
    const shipper = await beginGeneration(shard, store, ref, path);
    shard.write((db) => { for (let i = 0; i < 500; i++) db.prepare('INSERT INTO items (name) VALUES (?)').run('v'.repeat(200)); });
    shard.write((db) => db.exec('DELETE FROM items WHERE id > 10'));
    await ship(shipper, store);
    shard.db.exec('VACUUM');
    const c1 = shipper.capture();
    expect(c1).toMatchObject({ kind: 'none', pendingCommits: 1 });
    expect(shipper.checkpointAllowed()).toBe(false);
    shard.write(() => {});
    expect(await ship(shipper, store)).toBe(1);
    const out = join(dir, 'v.db');
    const r = await restore({ store, ref, outPath: out });
    expect(r.txid).toBe(shard.txid());
    expect(dumpDatabase(out)).toEqual(dumpDatabase(path));
    expect(r.pages).toBe(shard.db.pragma('page_count', { simple: true }));
  });

  it('detects a gap, an overlap and a corrupt segment as BACKUP_INVALID, and leaves no output file', async () => {
    const { dir, path, shard, store, ref } = await setup();
    const shipper = await beginGeneration(shard, store, ref, path);
    const keys: string[] = [];
    for (let i = 0; i < 4; i++) {
      shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run(`n${i}`));
      const c = shipper.capture();
      if (c.kind !== 'segment') throw new Error(c.kind);
      await store.put(c.key, c.bytes);
      shipper.acknowledge(c.maxTxid);
      keys.push(c.key);
    }
    const out = join(dir, 'gap.db');
    const seg2 = await store.get(keys[1]!);
    await store.delete(keys[1]!);
    await expect(restore({ store, ref, outPath: out })).rejects.toMatchObject({ code: 'BACKUP_INVALID', message: expect.stringMatching(/Gap/) });
    expect(existsSync(out)).toBe(false);
    await store.put(keys[1]!, seg2);
    // A segment overlapping another one's range.
    const overlapKey = keys[2]!.replace(/segments\/([0-9a-f]{16})-/, (_m, a: string) => `segments/${(Number.parseInt(a, 16) - 1).toString(16).padStart(16, '0')}-`);
    await store.put(overlapKey, await store.get(keys[2]!));
    await expect(restore({ store, ref, outPath: out })).rejects.toMatchObject({ code: 'BACKUP_INVALID' });
    await store.delete(overlapKey);
    const bad = Buffer.from(seg2);
    bad[bad.length >> 1]! ^= 0x40;
    await store.put(keys[1]!, bad);
    await expect(restore({ store, ref, outPath: out })).rejects.toMatchObject({ code: 'BACKUP_INVALID' });
    await store.put(keys[1]!, seg2);
    expect((await restore({ store, ref, outPath: out })).txid).toBe(shard.txid());
  });

  it('restores to a point in time and lists generations with their ranges', async () => {
    const { dir, path, shard, store, ref } = await setup();
    let now = 1_800_000_000_000;
    shard.checkpoint();
    const shipper = WalShipper.beginGeneration({ dbPath: path, ...ref, now: () => now });
    cleanups.unshift(() => shipper.close());
    const snap = createSnapshot({ dbPath: path, ...ref, time: now });
    await store.put(snapshotKey(ref, snap.header.txid), snap.stream);
    const dumps: Array<{ time: number; txid: number; dump: Record<string, unknown[]> }> = [];
    for (let i = 0; i < 5; i++) {
      now += 60_000;
      shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run(`t${i}`));
      await ship(shipper, store);
      dumps.push({ time: now, txid: shard.txid(), dump: dumpDatabase(path) });
    }
    const mid = dumps[2]!;
    const out = join(dir, 'pit.db');
    const r = await restore({ store, ref, outPath: out, target: { time: new Date(mid.time + 30_000) } });
    expect(r).toMatchObject({ txid: mid.txid, time: mid.time });
    expect(dumpDatabase(out)).toEqual(mid.dump);
    await expect(restore({ store, ref, outPath: out, target: { time: 1 } })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(restore({ store, ref, outPath: out, target: { txid: 999 } })).rejects.toMatchObject({ code: 'BAD_REQUEST' });

    const gens = await listGenerations(store, TENANT, INC);
    expect(gens).toHaveLength(1);
    expect(gens[0]).toMatchObject({ epoch: 1, generation: ref.generation, segmentCount: 5, firstTxid: snap.header.txid, lastTxid: shard.txid(), lastTime: now });
    expect(await readGenerationTip(store, ref)).toMatchObject({ txid: shard.txid(), checksum: shipper.checksum });
  });

  it('resumes a generation after a restart from the WAL left on disk, and refuses a WAL changed behind its back', async () => {
    const { dir, path, shard, store, ref } = await setup();
    const s1 = await beginGeneration(shard, store, ref, path);
    shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('a'));
    await ship(s1, store);
    shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('b')); // committed, not shipped: "crash"
    s1.close();
    const tip = (await readGenerationTip(store, ref))!;
    const s2 = WalShipper.resume({ dbPath: path, ...ref }, tip)!;
    expect(s2).not.toBeNull();
    cleanups.unshift(() => s2.close());
    expect(await ship(s2, store)).toBe(1);
    const out = join(dir, 'resumed.db');
    expect((await restore({ store, ref, outPath: out })).txid).toBe(shard.txid());
    expect(dumpDatabase(out)).toEqual(dumpDatabase(path));
    // A tip the local files do not continue.
    expect(WalShipper.resume({ dbPath: path, ...ref }, { ...tip, checksum: tip.checksum ^ 1n })).toBeNull();
    // A checkpoint nobody told the shipper about: the next capture asks for a new generation.
    shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('c'));
    shard.checkpoint();
    shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('d'));
    expect(s2.capture()).toMatchObject({ kind: 'restart' });
    // Starting over: a new generation restores on its own.
    const ref2 = { ...ref, generation: newGenerationId() };
    const s3 = await beginGeneration(shard, store, ref2, path);
    shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('e'));
    await ship(s3, store);
    const out2 = join(dir, 'gen2.db');
    await restore({ store, ref: ref2, outPath: out2 });
    expect(dumpDatabase(out2)).toEqual(dumpDatabase(path));
    const gens = await listGenerations(store, TENANT, INC);
    expect(gens.map((g) => g.generation)).toEqual([ref.generation, ref2.generation].sort());
    expect(generationPrefix(ref2)).toContain('/generations/0000000000000001-');
  });
});

describe('generation start from a copy', () => {
  it('hashes the copy in slices (async) to the same state as in one go, and ships what the live file gained since', async () => {
    const { dir, path, shard, store, ref } = await setup();
    shard.write((db) => { for (let i = 0; i < 300; i++) db.prepare('INSERT INTO items (name, payload) VALUES (?, ?)').run(`n${i}`, randomBytes(900)); });
    expect(shard.checkpoint().busy).toBe(0);
    const copy = join(dir, 'copy.db');
    const { copyFileSync } = await import('node:fs');
    copyFileSync(path, copy);
    const sync = WalShipper.beginGenerationFromCopy({ dbPath: path, ...ref }, copy);
    const sliced = await WalShipper.beginGenerationFromCopyAsync({ dbPath: path, ...ref }, copy, 7);
    cleanups.unshift(() => { sync.close(); sliced.close(); });
    expect(sliced.checksum).toBe(sync.checksum);
    expect(sliced.txid).toBe(sync.txid);
    expect(sliced.pageCount).toBe(sync.pageCount);
    const snap = createSnapshot({ dbPath: copy, ...ref, checksum: sliced.checksum, pageHash: sliced.pageHash });
    await store.put(snapshotKey(ref, snap.header.txid), snap.stream, { ifNoneMatch: true });
    await snap.done;
    shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('after-copy'));
    expect(await ship(sliced, store)).toBe(1);
    const out = join(dir, 'restored.db');
    const res = await restore({ store, ref, outPath: out });
    expect(res.txid).toBe(shard.txid());
    expect(dumpDatabase(out)).toEqual(dumpDatabase(path));
    // A copy of another tenant is refused.
    const other = createTestShard(join(dir, 'other.db'), 'other', 'inc-9');
    other.db.close();
    await expect(WalShipper.beginGenerationFromCopyAsync({ dbPath: path, ...ref }, join(dir, 'other.db'))).rejects.toThrow(/another tenant/);
  });
});

describe('txid attribution across schema changes in one capture', () => {
  it('ships DDL that grows sqlite_schema past page 1, a VACUUM and later writes in one segment; restore equals the source', async () => {
    const { dir, path, shard, store, ref } = await setup();
    const shipper = await beginGeneration(shard, store, ref, path);
    shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('before'));
    for (let i = 0; i < 60; i++) shard.write((db) => db.exec(`CREATE TABLE t${i} (a INTEGER PRIMARY KEY, b TEXT, c BLOB, d REAL, e TEXT DEFAULT 'x${'y'.repeat(40)}')`));
    shard.write((db) => { for (let i = 0; i < 30; i++) db.exec(`DROP TABLE t${i * 2}`); });
    shard.db.exec('VACUUM');
    shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('after'));
    expect(await ship(shipper, store)).toBe(63);
    const out = join(dir, 'restored-ddl.db');
    const r = await restore({ store, ref, outPath: out });
    expect(r.txid).toBe(shard.txid());
    expect(dumpDatabase(out)).toEqual(dumpDatabase(path));
  });
});

describe('a transaction whose WAL frames are out of page order', () => {
  it('ships its pages ascending (a cache spill writes high pages first); restore equals the source', async () => {
    const { dir, path, shard, store, ref } = await setup();
    shard.write((db) => db.prepare("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000) INSERT INTO items (id, name) SELECT x, hex(randomblob(100)) FROM n").run());
    const shipper = await beginGeneration(shard, store, ref, path);
    // A page cache of 10 pages: updating from the last row back spills high page numbers to the log mid-transaction,
    // and the low ones follow at commit.
    shard.db.pragma('cache_size = 10');
    shard.write((db) => db.prepare("UPDATE items SET name = 'changed ' || id WHERE id IN (SELECT id FROM items ORDER BY id DESC)").run());
    const frames = readFramesOf(`${path}-wal`);
    expect(frames.some((pgno, i) => i > 0 && pgno < frames[i - 1]!)).toBe(true); // the case under test
    expect(await ship(shipper, store)).toBe(1);
    const out = join(dir, 'restored-spill.db');
    await restore({ store, ref, outPath: out });
    expect(dumpDatabase(out)).toEqual(dumpDatabase(path));
  });
});

/** Page numbers of a WAL's committed frames, in log order. */
function readFramesOf(walPath: string): number[] {
  const res = readWal(readFileSync(walPath));
  return res.kind === 'frames' ? res.frames.map((f) => f.pgno) : [];
}

describe('a database file replaced under the shipper', () => {
  it('is never read as this generation: capture reports a restart (restore in place, move)', async () => {
    const { dir, path, shard, store, ref } = await setup();
    const shipper = await beginGeneration(shard, store, ref, path);
    shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('a'));
    expect(await ship(shipper, store)).toBe(1);
    shipper.releaseFile();
    shard.db.close();
    const { copyFileSync, renameSync } = await import('node:fs');
    copyFileSync(path, join(dir, 'other.db'));
    renameSync(join(dir, 'other.db'), path); // same content, another file
    const c = await shipper.captureAsync();
    expect(c).toEqual({ kind: 'restart', reason: 'db-replaced' });
  });
});
