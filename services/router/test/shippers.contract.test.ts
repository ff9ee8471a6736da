/**
 * One contract for both homes of the WAL shippers (replication/shippers.ts):
 * on the calling thread and on the shipper thread. Each ships real commits of
 * a Domicile-shaped file into a filesystem bucket and restores them; the
 * thread additionally survives its own crash (SHIPPER_LOST, then a new thread).
 */
import { closeSync, copyFileSync, fstatSync, openSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FsObjectStore, openObjectStore, type ObjectStore } from '@domicile/object-store';
import { walChangedSince, type LiveFileLender } from '@domicile/shard';
import {
  createSnapshot, newGenerationId, PageHash, readGenerationTip, restore, snapshotKey, type GenerationRef, type PageHashId,
} from '@domicile/replication';
import { createTestShard, dumpDatabase, tempDir } from '@domicile/replication/test-support';
import { S3RVER_CREDENTIALS, startS3Server } from '@domicile/testkit';
import { InProcessShippers, isShipperLost, type ShipperHandle, type Shippers } from '../src/replication/shippers.ts';
import { ThreadShippers } from '../src/replication/shipper-thread.ts';

const cleanups: Array<() => unknown> = [];
afterEach(async () => { for (const c of cleanups.splice(0)) await c(); });

async function setup(make: () => Shippers) {
  const { dir, cleanup } = tempDir();
  const shippers = make();
  cleanups.push(cleanup, () => shippers.close());
  const path = join(dir, 'shard.db');
  const shard = createTestShard(path, 'acme', 'inc-1');
  cleanups.unshift(() => shard.db.close());
  shard.db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)');
  shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('first'));
  const store = new FsObjectStore(join(dir, 'bucket'));
  const ref: GenerationRef = { tenant: 'acme', incarnation: 'inc-1', epoch: 1, generation: newGenerationId() };
  return { dir, path, shard, store, ref, shippers };
}

/** A generation start as the replicator does it: checkpoint, copy, handle from the copy, snapshot. */
async function begin(s: Awaited<ReturnType<typeof setup>>, pageHash?: PageHashId): Promise<ShipperHandle> {
  expect(s.shard.checkpoint().busy).toBe(0);
  const copy = join(s.dir, `copy-${Math.random()}.db`);
  copyFileSync(s.path, copy);
  const h = await s.shippers.beginFromCopy({ dbPath: s.path, ...s.ref, ...(pageHash === undefined ? {} : { pageHash }) }, copy);
  const snap = createSnapshot({ dbPath: copy, ...s.ref, checksum: h.checksum, pageHash: h.pageHash });
  await Promise.all([s.store.put(snapshotKey(s.ref, snap.header.txid), snap.stream, { ifNoneMatch: true }), snap.done]);
  return h;
}

/** A restore of the bucket reaches the shard's txid and holds exactly its rows. */
async function expectRestoresLive(s: Awaited<ReturnType<typeof setup>>): Promise<void> {
  const out = join(s.dir, `restored-${Math.random()}.db`);
  expect((await restore({ store: s.store, ref: s.ref, outPath: out })).txid).toBe(s.shard.txid());
  expect(dumpDatabase(out)).toEqual(dumpDatabase(s.path));
}

/** Passes until nothing is left; returns the segments stored. */
async function ship(h: ShipperHandle, store: ObjectStore): Promise<number> {
  let n = 0;
  for (;;) {
    const r = await h.pass(store);
    n += r.uploads.length;
    if (r.kind === 'none') return n;
    if (r.kind !== 'stored') throw new Error(`unexpected pass ${r.kind}`);
  }
}

const implementations: Array<[string, (liveFiles?: LiveFileLender) => Shippers]> = [
  ['in process', (liveFiles) => new InProcessShippers(liveFiles ? { liveFiles } : {})],
  ['shipper thread', (liveFiles) => new ThreadShippers(liveFiles ? { liveFiles } : {})],
];

/**
 * A lender that opens a fresh descriptor per borrow and checks, when it comes back, that the shipper
 * did not close it (closing a live file's descriptor drops the process's SQLite locks on it).
 */
function countingLender() {
  const out = new Set<number>();
  const closedByBorrower: number[] = [];
  let borrowed = 0;
  const lender: LiveFileLender = {
    borrowLiveFile: (file) => {
      const fd = openSync(file.path, 'r');
      out.add(fd);
      borrowed++;
      return fd;
    },
    returnLiveFile: (fd) => {
      expect(out.delete(fd)).toBe(true);
      try {
        fstatSync(fd);
      } catch {
        closedByBorrower.push(fd);
        return;
      }
      closeSync(fd);
    },
  };
  return { lender, out, closedByBorrower, borrowed: () => borrowed };
}

describe.each(implementations)('Shippers contract: %s', (_name, make) => {
  it('new generations sum XXH64 page hashes; a generation of SHA-256 ones (an older build\'s) resumes with SHA-256', async () => {
    const s = await setup(make);
    const fresh = await begin(s);
    expect(fresh.pageHash).toBe(PageHash.xxh64);
    fresh.close();
    s.ref.generation = newGenerationId();
    const h = await begin(s, PageHash.sha256);
    expect(h.pageHash).toBe(PageHash.sha256);
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('before'));
    expect(await ship(h, s.store)).toBe(1);
    h.close();
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('after the restart'));
    const tip = (await readGenerationTip(s.store, s.ref))!;
    expect(tip.pageHash).toBe(PageHash.sha256);
    const resumed = (await s.shippers.resume({ dbPath: s.path, ...s.ref }, tip))!;
    expect(resumed.pageHash).toBe(PageHash.sha256);
    expect(await ship(resumed, s.store)).toBe(1);
    await expectRestoresLive(s);
  });

  it('ships commits as segments a restore replays exactly; txids and acknowledgements follow', async () => {
    const s = await setup(make);
    const h = await begin(s);
    expect(h.txid).toBe(s.shard.txid());
    expect(h.shippedTxid).toBe(h.txid);
    for (let i = 0; i < 5; i++) s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run(`row ${i}`));
    const r = await h.pass(s.store);
    expect(r).toMatchObject({ kind: 'stored', uploads: [{ maxTxid: s.shard.txid() }] });
    expect(r.uploads[0]!.bytes).toBeGreaterThan(0);
    expect([h.txid, h.shippedTxid]).toEqual([s.shard.txid(), s.shard.txid()]);
    expect(await h.checkpointAllowed()).toBe(true);
    // The mark a checkpoint job checks: the end of the shipped log, which a new commit moves past.
    const mark = await h.checkpointMark();
    expect(mark).toMatchObject({ offset: statSync(`${s.path}-wal`).size });
    expect(walChangedSince(`${s.path}-wal`, mark!)).toBe(false);
    expect(await h.pass(s.store)).toMatchObject({ kind: 'none', uploads: [] });
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('unshipped'));
    expect(walChangedSince(`${s.path}-wal`, mark!)).toBe(true);
    expect(await h.checkpointMark()).toBeNull();
    await ship(h, s.store);
    await expectRestoresLive(s);
    h.close();
  });

  it('a failed upload acknowledges nothing and keeps its segment: the next pass stores those bytes first', async () => {
    const s = await setup(make);
    const h = await begin(s);
    const before = h.shippedTxid;
    for (let i = 0; i < 3; i++) s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run(`row ${i}`));
    // A bucket whose root lies under a regular file: every put fails (ENOTDIR).
    writeFileSync(join(s.dir, 'not-a-dir'), '');
    const down = new FsObjectStore(join(s.dir, 'not-a-dir', 'bucket'));
    await expect(h.pass(down)).rejects.toThrow();
    expect([h.txid, h.shippedTxid]).toEqual([s.shard.txid(), before]);
    expect(await h.checkpointAllowed()).toBe(false); // captured, not acknowledged
    expect(await h.checkpointMark()).toBeNull();
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('after the failure'));
    const r = await h.pass(s.store);
    expect(r).toMatchObject({ kind: 'stored', uploads: [{ maxTxid: s.shard.txid() - 1 }, { maxTxid: s.shard.txid() }] });
    expect(h.shippedTxid).toBe(s.shard.txid());
    expect(await h.checkpointAllowed()).toBe(true);
    await expectRestoresLive(s);
    h.close();
  });

  it('a checkpoint reported through noteCheckpoint continues the same generation (the shipper keeps its state across the file it closes after each capture)', async () => {
    const s = await setup(make);
    const h = await begin(s);
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('a'));
    expect(await ship(h, s.store)).toBe(1);
    expect(await h.checkpointAllowed()).toBe(true);
    h.noteCheckpoint(s.shard.checkpoint());
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('b'));
    expect(await ship(h, s.store)).toBe(1);
    await expectRestoresLive(s);
  });

  it('resumes from the bucket tip after a restart (the -wal keeps what was not shipped); refuses a file that does not continue it', async () => {
    const s = await setup(make);
    const h = await begin(s);
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('shipped'));
    await ship(h, s.store);
    h.close();
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('not yet shipped'));
    const tip = (await readGenerationTip(s.store, s.ref))!;
    const resumed = await s.shippers.resume({ dbPath: s.path, ...s.ref }, tip);
    expect(resumed).not.toBeNull();
    expect(await ship(resumed!, s.store)).toBe(1);
    await expectRestoresLive(s);
    expect(await s.shippers.resume({ dbPath: s.path, ...s.ref }, { ...tip, checksum: tip.checksum ^ 1n })).toBeNull();
  });
});

describe.each(implementations)('Shippers contract with a lender of live-file descriptors: %s', (_name, make) => {
  it('reads the live file only through lent descriptors, for each construction and each pass, and never closes one', async () => {
    const l = countingLender();
    const s = await setup(() => make(l.lender));
    const h = await begin(s);
    expect(l.borrowed()).toBe(1);
    expect(l.out.size).toBe(0); // given back once the shipper exists: an idle shipper holds none
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('shipped'));
    await ship(h, s.store);
    // A checkpoint, then commits: the capture reads pages of the database file itself (through the lent one).
    expect(s.shard.checkpoint().busy).toBe(0);
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('after a checkpoint'));
    h.noteCheckpoint({ busy: 0 });
    await ship(h, s.store);
    h.close();
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('not yet shipped'));
    const resumed = await s.shippers.resume({ dbPath: s.path, ...s.ref }, (await readGenerationTip(s.store, s.ref))!);
    expect(resumed).not.toBeNull();
    expect(await ship(resumed!, s.store)).toBe(1);
    resumed!.close();
    await expectRestoresLive(s);
    expect(l.borrowed()).toBeGreaterThanOrEqual(6); // begin, four passes at least, resume
    expect(l.out.size).toBe(0);
    expect(l.closedByBorrower).toEqual([]);
  });
});

describe('ThreadShippers', () => {
  it('a crashed thread fails its handles with SHIPPER_LOST; the next call starts a new thread that resumes from the tip', async () => {
    const threads = new ThreadShippers();
    const s = await setup(() => threads);
    const h = await begin(s);
    const first = threads.threadId;
    expect(first).toBeDefined();
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('before crash'));
    await ship(h, s.store);
    await threads.crashForTest();
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('after crash'));
    const lost = await h.pass(s.store).catch((err: unknown) => err);
    expect(isShipperLost(lost)).toBe(true);
    const tip = (await readGenerationTip(s.store, s.ref))!;
    const resumed = (await threads.resume({ dbPath: s.path, ...s.ref }, tip))!;
    expect(threads.threadId).not.toBe(first);
    expect(await ship(resumed, s.store)).toBe(1);
    await expectRestoresLive(s);
  });

  it('counts its S3 puts by how they were sent, and keeps the counts of a thread that crashed (putTotals)', async () => {
    const s3 = await startS3Server({ buckets: ['puts'] });
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    cleanups.push(() => s3.stop(), () => {
      for (const [k, v] of [['AWS_ACCESS_KEY_ID', saved.id], ['AWS_SECRET_ACCESS_KEY', saved.secret]] as const) {
        if (v === undefined) delete process.env[k]; else process.env[k] = v;
      }
    });
    // The thread opens the bucket from its URL with the standard credential chain (here: the environment).
    process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
    const url = s3.bucketUrl('puts', 'p');
    const bucket = openObjectStore(url);
    const threads = new ThreadShippers({ sourceOf: (store) => (store === bucket ? url : undefined) });
    const s = await setup(() => threads);
    expect(threads.putTotals().size).toBe(0);
    let h = await begin(s);
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('one'));
    expect(await ship(h, bucket)).toBe(1);
    expect(threads.putTotals().get(url)).toEqual({ lean: 1, sdk: 0, leanOff: false });
    await threads.crashForTest();
    s.ref.generation = newGenerationId();
    h = await begin(s); // on a new thread, whose store counts from 0
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('two'));
    expect(await ship(h, bucket)).toBe(1);
    expect(threads.putTotals().get(url)).toEqual({ lean: 2, sdk: 0, leanOff: false });
  });

  it('errors thrown in the thread arrive with their code and message', async () => {
    const threads = new ThreadShippers();
    const s = await setup(() => threads);
    const other = createTestShard(join(s.dir, 'other.db'), 'other', 'inc-9');
    other.db.close();
    await expect(threads.beginFromCopy({ dbPath: s.path, ...s.ref }, join(s.dir, 'other.db'))).rejects.toThrow(/another tenant/);
  });

  it('a pass into a bucket it has no URL for fails with INTERNAL; the thread opens the URL sourceOf gives', async () => {
    const opened: string[] = [];
    const threads = new ThreadShippers({ sourceOf: (store) => (store instanceof FsObjectStore && store.root.endsWith('bucket') ? (opened.push(store.root), store.describe()) : undefined) });
    const s = await setup(() => threads);
    const h = await begin(s);
    s.shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('x'));
    await expect(h.pass(new FsObjectStore(join(s.dir, 'elsewhere')))).rejects.toMatchObject({ code: 'INTERNAL' });
    expect(await ship(h, s.store)).toBe(1);
    expect(opened).toEqual([s.store.root, s.store.root]);
  });
});
