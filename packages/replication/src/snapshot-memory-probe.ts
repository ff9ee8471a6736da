/**
 * Child-process probe for snapshot.test.ts: builds a database of N MB, streams
 * its snapshot into a filesystem store and restores it, and prints the peak
 * RSS growth as JSON. Run with `node --expose-gc --import tsx` so the baseline
 * is measured after a full GC.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FsObjectStore } from '@domicile/object-store';
import { newGenerationId, snapshotKey } from './keys.ts';
import { restore } from './restore.ts';
import { createSnapshot } from './snapshot.ts';
import { createTestShard, tempDir } from './test-support.ts';

const mb = Number(process.argv[2] ?? '20');
const { dir, cleanup } = tempDir();
try {
  const path = join(dir, 'big.db');
  const s = createTestShard(path, 'acme', 'inc-1');
  s.write((db) => {
    db.exec('CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)');
    const ins = db.prepare('INSERT INTO blobs (b) VALUES (?)');
    for (let i = 0; i < mb * 32; i++) ins.run(Buffer.concat([randomBytes(16384), Buffer.alloc(16384, i)]));
  });
  s.checkpoint();
  const txid = s.txid();
  s.db.close();
  const sourceHash = createHash('sha256').update(readFileSync(path)).digest('hex');
  const store = new FsObjectStore(join(dir, 'bucket'));
  const ref = { tenant: 'acme', incarnation: 'inc-1', epoch: 1, generation: newGenerationId() };
  (globalThis as { gc?: () => void }).gc?.();
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 2);
  const snap = createSnapshot({ dbPath: path, ...ref });
  await store.put(snapshotKey(ref, snap.header.txid), snap.stream);
  const { bytes } = await snap.done;
  const out = join(dir, 'restored.db');
  const r = await restore({ store, ref, outPath: out });
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  const restoredHash = createHash('sha256').update(readFileSync(out)).digest('hex');
  console.log(JSON.stringify({
    dbBytes: snap.header.pageCount * snap.header.pageSize, objectBytes: bytes, rssGrowth: peak - rss0,
    txid, restoredTxid: r.txid, identical: sourceHash === restoredHash,
  }));
} finally {
  cleanup();
}
