// Restore fetches and inflates the following segments while it applies the
// current one: the result must not depend on that (same database, every
// object still verified), and a bad object past a PITR stop point is never
// read into the answer.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FsObjectStore, type ObjectStore } from '@domicile/object-store';
import { newGenerationId, snapshotKey, type GenerationRef } from './keys.ts';
import { PageHash, type PageHashId } from './checksum.ts';
import { decodeSegment, encodeSegment, encodeSegmentV2, type SegmentHeader } from './segment.ts';
import { readGenerationTip, restore } from './restore.ts';
import { createSnapshot, snapshotAsFormat1 } from './snapshot.ts';
import { createTestShard, dumpDatabase, tempDir } from './test-support.ts';
import { WalShipper } from './wal-shipper.ts';

let cleanups: Array<() => void> = [];
afterEach(() => { for (const c of cleanups) c(); cleanups = []; });

/** A generation of 1 snapshot + `n` segments (one transaction each), of page hash `pageHash`; the dumps after each txid. */
async function generation(n: number, pageHash?: PageHashId) {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  const path = join(dir, 'acme.db');
  const shard = createTestShard(path, 'acme', 'inc-1');
  cleanups.unshift(() => { if (shard.db.open) shard.db.close(); });
  shard.write((db) => db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, payload BLOB)'));
  const store = new FsObjectStore(join(dir, 'bucket'));
  const ref: GenerationRef = { tenant: 'acme', incarnation: 'inc-1', epoch: 1, generation: newGenerationId() };
  shard.checkpoint();
  const shipper = WalShipper.beginGeneration({ dbPath: path, ...ref, ...(pageHash === undefined ? {} : { pageHash }) });
  cleanups.unshift(() => shipper.close());
  const release = shipper.hold();
  const snap = createSnapshot({ dbPath: path, ...ref, checksum: shipper.checksum, pageHash: shipper.pageHash });
  const snapKey = snapshotKey(ref, snap.header.txid);
  await store.put(snapKey, snap.stream);
  await snap.done;
  release();
  const keys: string[] = [];
  const dumps = new Map<number, Record<string, unknown[]>>();
  const ins = shard.db.prepare('INSERT INTO items (name, payload) VALUES (?, ?)');
  for (let i = 0; i < n; i++) {
    // Appends (runs of consecutive pages) and scattered updates (single pages) in the same transaction.
    shard.write((db) => {
      for (let j = 0; j < 20; j++) ins.run(`item ${i}/${j}`, randomBytes(j % 4 === 0 ? 5000 : 100));
      db.prepare("UPDATE items SET name = name || '+' WHERE id % 7 = ?").run(i % 7);
    });
    const c = shipper.capture();
    if (c.kind !== 'segment') throw new Error(`expected a segment, got ${c.kind}`);
    await store.put(c.key, c.bytes);
    shipper.acknowledge(c.maxTxid);
    keys.push(c.key);
    dumps.set(shard.txid(), dumpDatabase(path));
  }
  return { dir, path, store, ref, keys, dumps, shard, shipper, snapKey };
}

async function corrupt(store: ObjectStore, key: string): Promise<void> {
  const bad = Buffer.from(await store.get(key));
  bad[bad.length >> 1]! ^= 0x01;
  await store.put(key, bad);
}

describe('restore with segments fetched ahead', () => {
  it('rebuilds the same database at every txid across many segments', async () => {
    const { dir, store, ref, dumps, path } = await generation(12);
    const latest = await restore({ store, ref, outPath: join(dir, 'latest.db') });
    expect(latest.objects).toBe(13);
    expect(dumpDatabase(join(dir, 'latest.db'))).toEqual(dumpDatabase(path));
    for (const [txid, dump] of dumps) {
      const out = join(dir, `t${txid}.db`);
      expect((await restore({ store, ref, outPath: out, target: { txid } })).txid).toBe(txid);
      expect(dumpDatabase(out), `txid ${txid}`).toEqual(dump);
    }
  });

  it('refuses a corrupt segment deep in the chain, yet restores a txid before it', async () => {
    const { dir, store, ref, keys, dumps } = await generation(10);
    await corrupt(store, keys[7]!);
    const out = join(dir, 'bad.db');
    await expect(restore({ store, ref, outPath: out })).rejects.toMatchObject({ code: 'BACKUP_INVALID', message: expect.stringContaining(keys[7]!) });
    expect(existsSync(out)).toBe(false);
    // Segment 7 was fetched ahead (it lies within the prefetch window) but the restore stops before it.
    const txid = [...dumps.keys()][5]!;
    const early = join(dir, 'early.db');
    expect((await restore({ store, ref, outPath: early, target: { txid } })).txid).toBe(txid);
    expect(dumpDatabase(early)).toEqual(dumps.get(txid));
  });

  it('refuses a missing segment in the middle of the prefetch window as a gap', async () => {
    const { dir, store, ref, keys } = await generation(8);
    await store.delete(keys[4]!);
    await expect(restore({ store, ref, outPath: join(dir, 'gap.db') })).rejects.toMatchObject({ code: 'BACKUP_INVALID', message: expect.stringMatching(/Gap/) });
  });
});

/** Re-encode segment `key` with `edit` applied to its header and transactions: a well-formed object (valid trailer) that lies. */
async function rewrite(store: ObjectStore, key: string, edit: (header: SegmentHeader, pages: Array<Array<{ pgno: number; data: Uint8Array }>>) => void): Promise<void> {
  const seg = decodeSegment(await store.get(key), key);
  const header: SegmentHeader = { tenant: seg.tenant, incarnation: seg.incarnation, generation: seg.generation, epoch: seg.epoch, pageSize: seg.pageSize, pageHash: seg.pageHash, preChecksum: seg.preChecksum, prePageCount: seg.prePageCount };
  const pages = seg.transactions.map((tx) => tx.pages().map((p) => ({ pgno: p.pgno, data: Uint8Array.from(p.data) })));
  edit(header, pages);
  const txs = seg.transactions.map((tx, i) => ({ txid: tx.txid, time: tx.time, truncateTo: tx.truncateTo, commitSize: tx.commitSize, postChecksum: tx.postChecksum, pages: pages[i]! }));
  await store.put(key, encodeSegment(header, txs));
}

describe('generations of SHA-256 page hashes (builds before segment format 3 and snapshot format 2)', () => {
  it('restores one written in the old formats, at every txid, and a shipper resumed on it continues it with SHA-256', async () => {
    const { dir, path, store, ref, keys, dumps, shard, shipper, snapKey } = await generation(4, PageHash.sha256);
    shipper.close();
    // Rewritten as an older build stored them: snapshot format 1, segments format 2 (same checksums).
    await store.put(snapKey, snapshotAsFormat1(await store.get(snapKey)));
    for (const key of keys) {
      const seg = decodeSegment(await store.get(key), key);
      expect(seg.pageHash).toBe(PageHash.sha256);
      const header: SegmentHeader = { tenant: seg.tenant, incarnation: seg.incarnation, generation: seg.generation, epoch: seg.epoch, pageSize: seg.pageSize, pageHash: seg.pageHash, preChecksum: seg.preChecksum, prePageCount: seg.prePageCount };
      await store.put(key, encodeSegmentV2(header, seg.transactions.map((tx) => ({ ...tx, pages: tx.pages() }))));
    }
    for (const [txid, dump] of dumps) {
      const out = join(dir, `old-${txid}.db`);
      expect((await restore({ store, ref, outPath: out, target: { txid } })).txid).toBe(txid);
      expect(dumpDatabase(out)).toEqual(dump);
    }
    // A node of this build resumes the generation: its new segments are format 3 and still SHA-256.
    const tip = (await readGenerationTip(store, ref))!;
    expect(tip.pageHash).toBe(PageHash.sha256);
    const resumed = WalShipper.resume({ dbPath: path, ...ref }, tip)!;
    expect(resumed).not.toBeNull();
    cleanups.unshift(() => resumed.close());
    expect(resumed.pageHash).toBe(PageHash.sha256);
    shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('after the upgrade'));
    const c = resumed.capture();
    if (c.kind !== 'segment') throw new Error(`expected a segment, got ${c.kind}`);
    await store.put(c.key, c.bytes);
    expect(decodeSegment(c.bytes)).toMatchObject({ major: 3, pageHash: PageHash.sha256 });
    const out = join(dir, 'mixed.db');
    expect((await restore({ store, ref, outPath: out })).txid).toBe(shard.txid());
    expect(dumpDatabase(out)).toEqual(dumpDatabase(path));
    // Their checksums are still checked: a lying page image in the old format is caught.
    await rewrite(store, keys[3]!, (_h, pages) => { pages[0]!.at(-1)!.data[100]! ^= 0x01; });
    await expect(restore({ store, ref, outPath: join(dir, 'lying-old.db'), target: { txid: [...dumps.keys()][3]! } }))
      .rejects.toMatchObject({ code: 'BACKUP_INVALID', message: expect.stringMatching(/Restored database has checksum 0x[0-9a-f]{16} \(sha256\)/) });
  });

  it('refuses a segment whose page hash is not its snapshot\'s', async () => {
    const { dir, store, ref, keys } = await generation(3);
    await rewrite(store, keys[1]!, (h) => { h.pageHash = PageHash.sha256; });
    await expect(restore({ store, ref, outPath: join(dir, 'mixed-hash.db') })).rejects.toMatchObject({
      code: 'BACKUP_INVALID', message: `${keys[1]!}: checksums of page hash sha256; the snapshot's are xxh64.`,
    });
  });
});

describe('restore checks what the backup records', () => {
  it('refuses a well-formed segment whose pages do not give the checksum it records (the finished file is hashed)', async () => {
    const { dir, store, ref, keys, dumps } = await generation(6);
    // One byte of one page image of the last segment: the trailer is valid, the content is not what was shipped.
    await rewrite(store, keys[5]!, (_h, pages) => { pages[0]!.at(-1)!.data[100]! ^= 0x01; });
    const out = join(dir, 'lying.db');
    await expect(restore({ store, ref, outPath: out })).rejects.toMatchObject({ code: 'BACKUP_INVALID', message: expect.stringMatching(/Restored database has checksum 0x[0-9a-f]{16} \(xxh64\); the backup records/) });
    expect(existsSync(out)).toBe(false);
    // The state before it is still restorable and checked.
    const txid = [...dumps.keys()][4]!;
    expect((await restore({ store, ref, outPath: join(dir, 'before.db'), target: { txid } })).txid).toBe(txid);
  });

  it('refuses a segment that does not start from the checksum the object before it ends at', async () => {
    const { dir, store, ref, keys } = await generation(4);
    await rewrite(store, keys[2]!, (h) => { h.preChecksum ^= 1n; });
    await expect(restore({ store, ref, outPath: join(dir, 'chain.db') })).rejects.toMatchObject({ code: 'BACKUP_INVALID', message: expect.stringContaining(`${keys[2]!}: starts from checksum`) });
  });

  it('refuses a snapshot whose header checksum does not match its pages', async () => {
    const { dir, store, ref } = await generation(0);
    let snap: { key: string } | undefined;
    for await (const e of store.list('')) snap ??= e; // generation(0): the snapshot is the only object
    // The header's checksum (offset 52, docs/replication-format.md) off by one bit, the trailer (SHA-256 of what precedes it) made valid again.
    const bytes = Buffer.from(await store.get(snap!.key));
    bytes[52 + 7]! ^= 0x01;
    createHash('sha256').update(bytes.subarray(0, bytes.length - 32)).digest().copy(bytes, bytes.length - 32);
    await store.put(snap!.key, bytes);
    await expect(restore({ store, ref, outPath: join(dir, 'snap.db') })).rejects.toMatchObject({ code: 'BACKUP_INVALID', message: expect.stringMatching(/Restored database has checksum/) });
  });
});
