// A move's pending generation (DESIGN §9 step 2, moves/pending-generation.ts):
// the target end uploads its copy as the snapshot of a generation of the new
// epoch before the fence, then the commits it applies, grouped by txid, and
// inside the fence the epoch stamp as one more transaction. Checked here with
// a real shard file, the real follower and receiver and a file:// bucket:
// restoring the generation gives the target's file at its tip and the
// source's exact state at every txid in between; the replicator's shipper can
// resume it; an abort leaves no object and no file; a txid that skips is
// refused instead of uploaded.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openObjectStore } from '@domicile/object-store';
import type { ObjectStore } from '@domicile/object-store';
import {
  generationsPrefix, listGenerations, PageHash, readGenerationTip, restore, WalShipper, type GenerationRef,
} from '@domicile/replication';
import { createTestShard, dumpDatabase, tempDir, type TestShard } from '@domicile/replication/testing';
import { decodeChanges, encodeChanges } from '../src/moves/change-wire.ts';
import { LocalMoveTarget } from '../src/moves/move-transport.ts';
import { WalFollower } from '../src/moves/wal-follower.ts';

const TENANT = 'acme';
const INC = 'inc-1';

async function keys(store: ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.list(prefix)) out.push(e.key);
  return out;
}

/** The dump without the meta row (epoch and txid differ across a move by design). */
function userData(file: string): Record<string, unknown[]> {
  const d = dumpDatabase(file);
  delete d['_domicile_meta'];
  return d;
}

describe('a move\'s pending generation', () => {
  let tmp: ReturnType<typeof tempDir>;
  let store: ObjectStore;
  let src: TestShard;
  let srcPath: string;
  let dstPath: string;

  beforeEach(() => {
    tmp = tempDir();
    store = openObjectStore(`file://${path.join(tmp.dir, 'bucket')}`);
    srcPath = path.join(tmp.dir, 'north', 'acme.db');
    dstPath = path.join(tmp.dir, 'south', 'acme.db');
    for (const d of ['north', 'south']) mkdirSync(path.join(tmp.dir, d), { recursive: true });
    src = createTestShard(srcPath, TENANT, INC);
    src.write((db) => db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)'));
  });
  afterEach(() => {
    src.db.close();
    store.close();
    tmp.cleanup();
  });

  const insert = (n: number, size = 300) => {
    for (let i = 0; i < n; i++) src.write((db) => db.prepare('INSERT INTO t (v) VALUES (randomblob(?))').run(size));
  };

  /** A move target that has the warm copy and one round of changes. */
  const copied = async (moveId: string, bucket: ObjectStore = store) => {
    const follower = new WalFollower(srcPath);
    const target = new LocalMoveTarget({ tenant: TENANT, incarnation: INC, epoch: 2, path: dstPath }, moveId, bucket);
    await target.begin(follower.open());
    for await (const chunk of follower.snapshot()) await target.write(chunk);
    await target.apply(follower.changes()!);
    return { follower, target };
  };

  it('holds the copy, every transaction by txid and the epoch stamp; restores exactly; the shipper resumes it', async () => {
    insert(200);
    src.checkpoint();
    insert(40);
    const follower = new WalFollower(srcPath);
    const target = new LocalMoveTarget({ tenant: TENANT, incarnation: INC, epoch: 2, path: dstPath }, 'm1', store);
    try {
      const info = follower.open();
      // Commits while the copy is taken, and a checkpoint that folds what it may under the pin.
      insert(20);
      src.db.pragma('wal_checkpoint(PASSIVE)');
      await target.begin(info);
      for await (const chunk of follower.snapshot()) await target.write(chunk);
      await target.apply(follower.changes()!);
      await target.publish(); // the snapshot
      const snapTxid = src.txid();

      // Commits after the snapshot, with commits that do not move the txid between them (and one trailing).
      const dumps = new Map<number, Record<string, unknown[]>>();
      for (let round = 0; round < 3; round++) {
        insert(5, 2000);
        dumps.set(src.txid(), dumpDatabase(srcPath));
        src.db.exec(`CREATE TABLE side${round} (a)`); // autocommit, txid unchanged: joins the next txid
        insert(1);
        dumps.set(src.txid(), dumpDatabase(srcPath));
        const ch = follower.changes()!;
        expect(ch.commits.length).toBeGreaterThan(5);
        await target.apply(ch);
        await target.publish();
      }
      const beforeTrailing = dumpDatabase(srcPath);
      src.db.exec('CREATE TABLE trailing (a)'); // no txid of its own: it joins the stamp's
      const last = follower.changes()!;
      await target.apply(last);
      const s = { checksum: follower.checksum, txid: follower.txid() };
      expect(await target.state()).toEqual(s);
      await target.finish(2);

      // The file in place (alone: no -wal, no partial copy): the source's data, epoch 2, one txid more (the stamp).
      expect(readdirSync(path.dirname(dstPath))).toEqual(['acme.db']);
      expect(userData(dstPath)).toEqual(userData(srcPath));
      expect(dumpDatabase(dstPath)['_domicile_meta']).toEqual([[TENANT, INC, 2, s.txid + 1]]);

      // One generation of epoch 2: a snapshot at the copy's txid, segments up to the stamp.
      const gens = await listGenerations(store, TENANT, INC);
      expect(gens).toHaveLength(1);
      expect(gens[0]).toMatchObject({ epoch: 2, firstTxid: snapTxid, lastTxid: s.txid + 1 });
      expect(gens[0]!.snapshots).toHaveLength(1);
      const ref: GenerationRef = { tenant: TENANT, incarnation: INC, epoch: 2, generation: gens[0]!.generation };

      const out = path.join(tmp.dir, 'restored.db');
      await restore({ store, ref, outPath: out });
      expect(dumpDatabase(out)).toEqual(dumpDatabase(dstPath));
      for (const [txid, dump] of dumps) {
        await restore({ store, ref, target: { txid }, outPath: out });
        expect(dumpDatabase(out)).toEqual(dump);
      }
      // Just before the stamp: the source's last txid, old epoch; the trailing commit came with the stamp.
      await restore({ store, ref, target: { txid: s.txid }, outPath: out });
      expect(dumpDatabase(out)).toEqual(beforeTrailing);
      expect(userData(dstPath)['__schema']).toContainEqual(['table', 'trailing', 'trailing', 'CREATE TABLE trailing (a)']);

      // The new primary's replicator continues this generation instead of beginning one.
      const tip = await readGenerationTip(store, ref);
      expect(tip?.txid).toBe(s.txid + 1);
      const shipper = WalShipper.resume({ dbPath: dstPath, ...ref }, tip!);
      expect(shipper).not.toBeNull();
      shipper!.close();
    } finally {
      follower.close();
    }
  });

  it('an abort after the snapshot and a segment leaves no object and no file in the target region', async () => {
    insert(100);
    const { follower, target } = await copied('m2');
    try {
      await target.publish();
      insert(10);
      await target.apply(follower.changes()!);
      await target.publish();
      expect((await keys(store, generationsPrefix(TENANT, INC))).length).toBe(2);
      await target.discard();
      expect(await keys(store, generationsPrefix(TENANT, INC))).toEqual([]);
      expect(readdirSync(path.dirname(dstPath))).toEqual([]);
    } finally {
      follower.close();
    }
  });

  it('a bucket that refuses the upload: REPLICATION_UNAVAILABLE naming it, and the abort still cleans up', async () => {
    insert(50);
    const refusing: ObjectStore = {
      put: async () => { throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }); },
      get: (k) => store.get(k), getStream: (k) => store.getStream(k), head: (k) => store.head(k),
      list: (p, o) => store.list(p, o), delete: (k) => store.delete(k), deleteMany: (k) => store.deleteMany(k),
      close: () => undefined, describe: () => 's3://south-bucket', supportsConditionalCreate: store.supportsConditionalCreate,
    };
    const { follower, target } = await copied('m4', refusing);
    try {
      await expect(target.publish()).rejects.toMatchObject({ code: 'REPLICATION_UNAVAILABLE', message: expect.stringContaining('s3://south-bucket') });
      await target.discard();
      expect(readdirSync(path.dirname(dstPath))).toEqual([]);
    } finally {
      follower.close();
    }
  });

  it('refuses commits whose txid skips instead of uploading a generation with a hole', async () => {
    insert(20);
    const { follower, target } = await copied('m3');
    try {
      await target.publish();
      src.db.exec('UPDATE _domicile_meta SET txid = txid + 5');
      await expect(target.apply(follower.changes()!)).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/txid went from \d+ to \d+/) });
      await target.discard();
      expect(await keys(store, generationsPrefix(TENANT, INC))).toEqual([]);
      expect(existsSync(dstPath)).toBe(false);
    } finally {
      follower.close();
    }
  });

  it('refuses a change set of another page hash (a node of another build), naming both; the real one applies after', async () => {
    insert(20);
    const { follower, target } = await copied('m5');
    try {
      insert(3);
      const ch = follower.changes()!;
      expect(ch.pageHash).toBe(PageHash.xxh64);
      // What a source of an older build (SHA-256 page hashes) sends, through the wire format.
      const { changes: foreign } = decodeChanges(encodeChanges({ ...ch, pageHash: PageHash.sha256 }, { tenant: TENANT, incarnation: INC, epoch: 1 }, 4096));
      expect(foreign.pageHash).toBe(PageHash.sha256);
      await expect(target.apply(foreign)).rejects.toMatchObject({
        code: 'NODE_UNAVAILABLE', message: 'move: the source node sums sha256 page hashes, this node xxh64: move between nodes of the same build',
      });
      await target.apply(decodeChanges(encodeChanges(ch, { tenant: TENANT, incarnation: INC, epoch: 1 }, 4096)).changes);
      expect(await target.state()).toEqual({ checksum: follower.checksum, txid: follower.txid() });
      await target.discard();
    } finally {
      follower.close();
    }
  });
});
