/**
 * Restore of a long history of small transactions — what a point-in-time
 * restore of an OLTP tenant replays — against a baseline measured in the same
 * run: fetching and decoding the same objects without applying them.
 *
 *   pnpm bench:restore-history [--txs N] [--per-segment N] [--no-append]
 *
 * Builds one shard of `--txs` one-row transactions (default 40,000; each
 * writes its table leaf, an index leaf and the txid page) shipped in segments
 * of `--per-segment` transactions (default 200) to a filesystem bucket, then
 * restores it three times with the library (`restore()`: every checksum,
 * `PRAGMA integrity_check`). Appends to RESULTS.md unless --no-append.
 */
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FsObjectStore } from '../packages/object-store/src/index.ts';
import {
  SegmentPasses, WalShipper, createSnapshot, decodeSegment, newGenerationId, restore, snapshotKey, type GenerationRef,
} from '../packages/replication/src/index.ts';
import { createTestShard, tempDir } from '../packages/replication/src/test-support.ts';
import { parseCommandLine, wholeNumber } from './bench/command-line.ts';
import { machineLine, publishResults } from './bench/report.ts';

const NAME = 'pnpm bench:restore-history';
const values = parseCommandLine(NAME, { txs: { type: 'string' }, 'per-segment': { type: 'string' }, 'no-append': { type: 'boolean', default: false } });
const TXS = wholeNumber(NAME, 'txs', values.txs, 40_000, 100, 1_000_000);
const PER = wholeNumber(NAME, 'per-segment', values['per-segment'], 200, 1, 100_000);
const ROUNDS = 3;

const { dir, cleanup } = tempDir();
try {
  console.error(`machine: ${machineLine()}`);
  const path = join(dir, 'shard.db');
  const shard = createTestShard(path, 'bench', 'inc-1');
  shard.db.exec('CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, body TEXT, at INTEGER); CREATE INDEX events_kind ON events(kind)');
  shard.checkpoint();
  const store = new FsObjectStore(join(dir, 'bucket'));
  const ref: GenerationRef = { tenant: 'bench', incarnation: 'inc-1', epoch: 1, generation: newGenerationId() };
  const copy = join(dir, 'copy.db');
  copyFileSync(path, copy);
  const shipper = await WalShipper.beginGenerationFromCopyAsync({ dbPath: path, ...ref }, copy);
  const snap = createSnapshot({ dbPath: copy, ...ref, checksum: shipper.checksum, pageHash: shipper.pageHash });
  await Promise.all([store.put(snapshotKey(ref, snap.header.txid), snap.stream), snap.done]);
  const passes = new SegmentPasses(shipper);
  const insert = shard.db.prepare('INSERT INTO events (kind, body, at) VALUES (?, ?, ?)');
  for (let i = 0; i < TXS; i++) {
    shard.write(() => insert.run(`kind-${i % 50}`, `event body number ${i}, some text`, i));
    if ((i + 1) % PER === 0) await passes.pass(store);
  }
  await passes.pass(store);
  shipper.close();
  const dbMB = ((shard.db.pragma('page_count', { simple: true }) as number) * (shard.db.pragma('page_size', { simple: true }) as number)) / 1e6;
  shard.db.close();
  const keys: string[] = [];
  for await (const e of store.list('')) if (e.key.endsWith('.seg')) keys.push(e.key);
  console.error(`history: ${TXS} transactions in ${keys.length} segments, database ${dbMB.toFixed(1)} MB`);

  const baseline: number[] = [];
  const restores: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    let t = performance.now();
    for (const key of keys) {
      const seg = decodeSegment(await store.get(key), key);
      await Promise.all(seg.transactions.map((tx) => tx.loadPages()));
    }
    baseline.push((performance.now() - t) / 1000);
    const out = join(dir, `restored-${r}.db`);
    t = performance.now();
    const res = await restore({ store, ref, outPath: out });
    restores.push((performance.now() - t) / 1000);
    if (res.txid !== TXS) throw new Error(`restore reached txid ${res.txid}, expected ${TXS}`);
    rmSync(out);
  }
  const best = (xs: number[]) => Math.min(...xs);
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(', ');
  const md = [
    `## Restore of a history of small transactions (\`${NAME}\`), ${new Date().toISOString().slice(0, 10)}`,
    '',
    `Command: \`${[NAME, ...process.argv.slice(2)].join(' ')}\`, ${new Date().toISOString()}.`,
    `Machine: ${machineLine()}.`,
    '',
    `Method: one shard, ${TXS.toLocaleString('en-US')} one-row transactions (table + index + txid page each) shipped in ${keys.length} segments of ${PER} to a filesystem bucket (database ${dbMB.toFixed(1)} MB); ${ROUNDS} rounds in this process, each: the baseline (fetch and decode every segment, decompressing its pages), then a library restore of the latest txid (every checksum, \`PRAGMA integrity_check\`).`,
    '',
    '| measurement | best | runs |',
    '|---|---|---|',
    `| baseline: fetch + decode the ${keys.length} segments | ${best(baseline).toFixed(2)} s | ${fmt(baseline)} s |`,
    `| restore | ${best(restores).toFixed(2)} s (**${Math.round(TXS / best(restores)).toLocaleString('en-US')} transactions/s**) | ${fmt(restores)} s |`,
    '',
    `Restore / baseline: ${(best(restores) / best(baseline)).toFixed(2)}×.`,
    '',
  ].join('\n');
  publishResults(md, !values['no-append']);
} finally {
  cleanup();
}
