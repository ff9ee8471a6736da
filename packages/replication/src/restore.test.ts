// Restore fetches and inflates the following segments while it applies the
// current one: the result must not depend on that (same database, every
// object still verified), and a bad object past a PITR stop point is never
// read into the answer.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FsObjectStore, type ObjectStore } from '@domicile/object-store';
import { newGenerationId, snapshotKey, type GenerationRef } from './keys.ts';
import { restore } from './restore.ts';
import { createSnapshot } from './snapshot.ts';
import { createTestShard, dumpDatabase, tempDir } from './test-support.ts';
import { WalShipper } from './wal-shipper.ts';

let cleanups: Array<() => void> = [];
afterEach(() => { for (const c of cleanups) c(); cleanups = []; });

/** A generation of 1 snapshot + `n` segments (one transaction each); the dumps after each txid. */
async function generation(n: number) {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  const path = join(dir, 'acme.db');
  const shard = createTestShard(path, 'acme', 'inc-1');
  cleanups.unshift(() => { if (shard.db.open) shard.db.close(); });
  shard.write((db) => db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, payload BLOB)'));
  const store = new FsObjectStore(join(dir, 'bucket'));
  const ref: GenerationRef = { tenant: 'acme', incarnation: 'inc-1', epoch: 1, generation: newGenerationId() };
  shard.checkpoint();
  const shipper = WalShipper.beginGeneration({ dbPath: path, ...ref });
  cleanups.unshift(() => shipper.close());
  const release = shipper.hold();
  const snap = createSnapshot({ dbPath: path, ...ref, checksum: shipper.checksum });
  await store.put(snapshotKey(ref, snap.header.txid), snap.stream);
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
  return { dir, path, store, ref, keys, dumps, shard };
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
