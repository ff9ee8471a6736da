/**
 * Replication format benchmark: segment encode/decode, the two page hashes
 * (SHA-256 the baseline of XXH64), and snapshot + restore
 * throughput on a filesystem bucket, against a baseline measured in the same
 * run (a plain file copy of the same database); then the shipper's capture of
 * many small transactions (one-row inserts, and one-row updates of random rows
 * of a 200k-row table; 140 per segment, as a busy async tenant ships them every
 * 200 ms) against the cost of committing them, and the appends as the shipper
 * thread captures a busy tenant's 500 ms (its page data compressed in place
 * against on the pool in a fresh buffer); then
 * the CPU of compressing a segment's page data on libuv's pool against in
 * place; then the CPU per transaction of writing on after each kind of WAL
 * checkpoint; then a held checkpoint's time with and without the
 * replicator's flush of the -wal before it, and after it at the force sizes
 * of 8 and 32 MiB, for appends and for updates spread over a large table.
 * Run: node --import tsx loadtest/replication-format-bench.ts
 */
import { copyFileSync, readFileSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { FsObjectStore } from '../packages/object-store/src/index.ts';
import {
  applyTransactionHashes, Compression, compressAsync, compressInlineBelow, DbHashState, decodeSegment, encodeSegment, createSnapshot, newGenerationId, PageHash, restore, SEGMENT_IN_PLACE_BYTES, snapshotKey,
  type SegmentTransaction,
} from '../packages/replication/src/index.ts';
import { seededRandom } from '@domicile/testkit/random';
import { createTestShard, tempDir } from '../packages/replication/src/test-support.ts';
import { WalShipper } from '../packages/replication/src/wal-shipper.ts';
import { syncLogFile } from '../services/router/src/replication/replicator.ts';
import { median } from './bench/report.ts';

/** Rows of the table the force-size line's updates are spread over. */
const SPREAD_ROWS = 250_000;

/** One-row transactions per captured segment (a busy async tenant's 200 ms of writes). */
const PER_SEGMENT = 140;
/** The same tenant's 500 ms (the default shipping interval). */
const BUSY_SEGMENT = 500;

const { dir, cleanup } = tempDir();
try {
  console.log(`machine: ${cpus()[0]?.model} × ${cpus().length}, Node ${process.version}, ${process.platform}`);
  const path = join(dir, 'bench.db');
  const shard = createTestShard(path, 'bench', 'inc-1');
  shard.write((db) => {
    db.exec('CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, score REAL, note TEXT)');
    db.exec('CREATE INDEX users_email ON users(email)');
    const ins = db.prepare('INSERT INTO users (name, email, score, note) VALUES (?, ?, ?, ?)');
    for (let i = 0; i < 200_000; i++) ins.run(`user ${i}`, `user${i}@example.com`, Math.random() * 1000, `note ${i % 977} ${'x'.repeat(i % 50)}`);
  });
  shard.checkpoint();
  shard.db.close();
  const file = readFileSync(path);
  const pageSize = 4096;
  const pages = file.length / pageSize;
  const mb = file.length / 1e6;
  console.log(`database: ${mb.toFixed(1)} MB, ${pages} pages (table + index, text and numbers)`);

  // Segment: the whole database as 100 transactions of equal page sets.
  const state = new DbHashState();
  const txs: SegmentTransaction[] = [];
  const per = Math.ceil(pages / 100);
  for (let t = 0; t < 100; t++) {
    const ps = [];
    for (let p = t * per + 1; p <= Math.min(pages, (t + 1) * per); p++) ps.push({ pgno: p, data: file.subarray((p - 1) * pageSize, p * pageSize) });
    const commitSize = Math.min(pages, (t + 1) * per);
    const tx = { txid: t + 1, time: Date.now(), truncateTo: commitSize, commitSize, pages: ps };
    txs.push({ ...tx, postChecksum: applyTransactionHashes(state, tx) });
  }
  const header = { tenant: 'bench', incarnation: 'inc-1', generation: newGenerationId(), epoch: 1, pageSize, pageHash: state.pageHash, preChecksum: 0n, prePageCount: 0 };
  for (const [name, compression] of [['brotli q1', Compression.brotli], ['deflate-raw l1', Compression.deflateRaw], ['none', Compression.none]] as const) {
    let t0 = performance.now();
    const bytes = encodeSegment(header, txs, { compression });
    const enc = performance.now() - t0;
    t0 = performance.now();
    const d = decodeSegment(bytes);
    for (const tx of d.transactions) tx.pages();
    const dec = performance.now() - t0;
    console.log(`segment ${name.padEnd(15)} encode ${(mb / (enc / 1000)).toFixed(0).padStart(5)} MB/s  decode ${(mb / (dec / 1000)).toFixed(0).padStart(5)} MB/s  ratio ${(file.length / bytes.length).toFixed(2)}`);
  }

  // Page hashes of the rolling checksum (docs/replication-format.md): every page of the database set into a
  // DbHashState of each page hash (the shipper's path), five interleaved rounds, median; SHA-256 (page hash 0,
  // older generations) is the baseline for XXH64 (new ones).
  const hashRuns: Record<'sha256' | 'xxh64', number[]> = { sha256: [], xxh64: [] };
  const sums = new Set<bigint>();
  for (let r = 0; r < 5; r++) {
    for (const name of ['sha256', 'xxh64'] as const) {
      const st = new DbHashState(pages, PageHash[name]);
      const t = performance.now();
      for (let p = 1; p <= pages; p++) st.setPage(p, file.subarray((p - 1) * pageSize, p * pageSize));
      hashRuns[name].push(((performance.now() - t) * 1000) / pages);
      sums.add(st.checksum);
    }
  }
  if (sums.size !== 2) throw new Error(`expected one checksum per page hash, got ${sums.size}`);
  const hashMedian = (xs: number[]) => [...xs].sort((a, b) => a - b)[2]!;
  const [shaUs, xxhUs] = [hashMedian(hashRuns.sha256), hashMedian(hashRuns.xxh64)];
  console.log(`page hash (${pageSize} B)     sha256 ${shaUs.toFixed(2)} µs, xxh64 ${xxhUs.toFixed(2)} µs per page (xxh64 / sha256 ${(xxhUs / shaUs).toFixed(2)}×)`);

  let t0 = performance.now();
  copyFileSync(path, join(dir, 'copy.db'));
  const copy = performance.now() - t0;
  const store = new FsObjectStore(join(dir, 'bucket'));
  const ref = { tenant: 'bench', incarnation: 'inc-1', epoch: 1, generation: newGenerationId() };
  t0 = performance.now();
  const snap = createSnapshot({ dbPath: path, ...ref });
  await store.put(snapshotKey(ref, snap.header.txid), snap.stream);
  const { bytes } = await snap.done;
  const snapMs = performance.now() - t0;
  t0 = performance.now();
  await restore({ store, ref, outPath: join(dir, 'restored.db') });
  const resMs = performance.now() - t0;
  console.log(`baseline file copy      ${(mb / (copy / 1000)).toFixed(0)} MB/s`);
  console.log(`snapshot → fs bucket    ${(mb / (snapMs / 1000)).toFixed(0)} MB/s (object ${(bytes / 1e6).toFixed(1)} MB, ${(copy / snapMs).toFixed(3)}× copy speed)`);
  console.log(`restore from fs bucket  ${(mb / (resMs / 1000)).toFixed(0)} MB/s (incl. checksums, fsync, integrity_check; ${(copy / resMs).toFixed(3)}× copy speed)`);

  // Capture: per transaction, reading its WAL frames, attributing its txid, hashing and compressing its pages.
  // Appends (each transaction writes the table's last leaf, as a busy insert-only tenant does) and random row
  // updates over a 200k-row table (each transaction writes a leaf of its own, so the log holds many pages).
  for (const workload of ['appends', 'random updates'] as const) {
    const c = captureCost(join(dir, `capture-${workload.replace(' ', '-')}.db`), ref, workload);
    console.log(`baseline commit         ${c.commitUs.toFixed(1)} µs per one-row transaction (${workload}; SQLite, WAL, synchronous=NORMAL)`);
    console.log(`capture + encode        ${c.captureUs.toFixed(1)} µs per transaction (${workload}), ${PER_SEGMENT} per segment (${(c.captureUs / c.commitUs).toFixed(2)}× the commit), ${c.storedPerTx.toFixed(0)} bytes stored per transaction`);
  }

  // The same appends as the shipper thread captures them (`captureAsync`) at the default 500 ms shipping interval: a
  // tenant committing 1,000 a second ships ~500 per segment, ~4 MiB of page images. In place: the shipper thread's
  // setting (`compressInlineBelow(SEGMENT_IN_PLACE_BYTES + 1)`, page data gathered in the reused buffer). On the pool:
  // what page data over SEGMENT_IN_PLACE_BYTES gets (a fresh buffer, brotli on a libuv thread), as segments of this
  // size did while the limit was 4 MiB. CPU of the whole process; runs alternating, median of 3.
  {
    const runs: Record<'inPlace' | 'pool', number[]> = { inPlace: [], pool: [] };
    for (let r = 0; r < 3; r++) {
      for (const how of r % 2 === 0 ? (['inPlace', 'pool'] as const) : (['pool', 'inPlace'] as const)) {
        compressInlineBelow(how === 'inPlace' ? SEGMENT_IN_PLACE_BYTES + 1 : 0);
        runs[how].push(await shipperThreadCapture(join(dir, `capture-thread-${how}-${r}.db`), ref, BUSY_SEGMENT));
      }
    }
    compressInlineBelow(0);
    const inPlace = median(runs.inPlace);
    const pool = median(runs.pool);
    console.log(`capture + encode        ${inPlace.toFixed(1)} µs CPU per transaction (appends, ${BUSY_SEGMENT} per segment, the shipper thread's settings); page data on the pool in a fresh buffer ${pool.toFixed(1)} µs (in place / pool ${(inPlace / pool).toFixed(2)}×)`);
  }

  // Compressing a segment's page data: on libuv's pool (compressAsync, as the main thread does) against in place
  // (compressInlineBelow, as the shipper thread does). CPU of the whole process per call (the pool's threads
  // count), runs interleaved, median of 5.
  const cpuPerCall = async (fn: () => unknown, calls: number): Promise<number> => {
    const c0 = process.cpuUsage();
    for (let i = 0; i < calls; i++) await fn();
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / calls / 1000;
  };
  for (const n of [25, 100, 400]) {
    const data = file.subarray(pageSize, (n + 1) * pageSize);
    const calls = Math.max(10, Math.floor(4000 / n));
    const runs: Record<'pool' | 'inPlace', number[]> = { pool: [], inPlace: [] };
    for (let r = 0; r < 5; r++) {
      compressInlineBelow(0);
      runs.pool.push(await cpuPerCall(() => compressAsync(Compression.brotli, data), calls));
      compressInlineBelow(Number.MAX_SAFE_INTEGER);
      runs.inPlace.push(await cpuPerCall(() => compressAsync(Compression.brotli, data), calls));
    }
    compressInlineBelow(0);
    const [pool, inPlace] = [median(runs.pool), median(runs.inPlace)];
    console.log(`compress ${(data.byteLength / 1e6).toFixed(2)} MB        pool ${pool.toFixed(2)} ms, in place ${inPlace.toFixed(2)} ms CPU per call (pool / in place ${(pool / inPlace).toFixed(2)}×)`);
  }

  // Checkpoints: the replicator folds a shipped log with wal_checkpoint(TRUNCATE), which empties the -wal, so the
  // writes after it extend the file block by block again; RESTART, and SQLite's own PASSIVE auto-checkpoint
  // (replication off), leave the file's blocks in place for the next log. CPU of this process per one-row
  // transaction (an insert and the txid bump), a checkpoint whenever the -wal passes 4 MiB; interleaved, median of 3.
  const perMode: Record<string, { cpu: number[]; sys: number[] }> = {};
  for (let r = 0; r < 3; r++) {
    for (const mode of ['TRUNCATE', 'RESTART', 'PASSIVE'] as const) {
      const c = checkpointCost(join(dir, `ckpt-${mode}-${r}.db`), mode);
      (perMode[mode] ??= { cpu: [], sys: [] }).cpu.push(c.cpuUs);
      perMode[mode]!.sys.push(c.sysUs);
    }
  }
  const ck = (m: string) => median(perMode[m]!.cpu);
  console.log(`checkpoint every 4 MiB  ${['TRUNCATE', 'RESTART', 'PASSIVE'].map((m) => `${m} ${ck(m).toFixed(1)} µs (system ${median(perMode[m]!.sys).toFixed(1)})`).join(', ')} CPU per transaction (TRUNCATE / RESTART ${(ck('TRUNCATE') / ck('RESTART')).toFixed(2)}×)`);

  // A held checkpoint (docs/replication.md, "Checkpoints"): wal_checkpoint(RESTART) of an 8 MiB log of one-row
  // inserts, alone (the baseline), and after the replicator's flush of the -wal (syncLogFile) with 300 more
  // commits written between the two, as the tenant writes on during the flush. Wall time; interleaved, median of 4.
  const held: Record<'plain' | 'flushed' | 'flush', number[]> = { plain: [], flushed: [], flush: [] };
  for (let r = 0; r < 4; r++) {
    held.plain.push((await heldCheckpointMs(join(dir, `held-plain-${r}.db`), false)).checkpointMs);
    const f = await heldCheckpointMs(join(dir, `held-flushed-${r}.db`), true);
    held.flushed.push(f.checkpointMs);
    held.flush.push(f.flushMs);
  }
  const [plainMs, flushedMs] = [median(held.plain), median(held.flushed)];
  console.log(`held checkpoint 8 MiB   RESTART alone ${plainMs.toFixed(1)} ms; after a flush of the -wal (${median(held.flush).toFixed(1)} ms, not held) ${flushedMs.toFixed(1)} ms (flushed / alone ${(flushedMs / plainMs).toFixed(2)}×)`);

  // The force size (DOMICILE_CHECKPOINT_FORCE_BYTES; docs/replication.md, "Why 32 MiB"): the RESTART in the hold,
  // after the flush, of a log of one-row appends and of one of one-row updates spread over a 250k-row table
  // (~60 MB; the hold then copies up to the log's size of distinct pages into the file), at 8 MiB (the baseline)
  // and at 32 MiB. Wall time; interleaved, median of 3.
  const spread = join(dir, 'spread.db');
  {
    const shard = createTestShard(spread, 'bench', 'inc-1');
    shard.db.exec('CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)');
    const insert = shard.db.prepare('INSERT INTO kv (v) VALUES (?)');
    shard.write(() => { for (let k = 0; k < SPREAD_ROWS; k++) insert.run('x'.repeat(200)); });
    shard.db.pragma('wal_checkpoint(TRUNCATE)');
    shard.db.close();
  }
  const forced: Record<string, number[]> = {};
  for (let r = 0; r < 3; r++) {
    for (const mib of [8, 32]) {
      for (const kind of ['append', 'update'] as const) {
        const path = join(dir, `forced-${kind}-${mib}-${r}.db`);
        copyFileSync(spread, path);
        (forced[`${kind} ${mib}`] ??= []).push(await forcedCheckpointMs(path, mib, kind));
      }
    }
  }
  const f = (k: string) => median(forced[k]!);
  console.log(`held checkpoint by size RESTART after the flush: appends ${f('append 8').toFixed(1)} ms at 8 MiB, ${f('append 32').toFixed(1)} ms at 32 MiB (${(f('append 32') / f('append 8')).toFixed(2)}×); updates spread over ${SPREAD_ROWS / 1000}k rows ${f('update 8').toFixed(1)} ms at 8 MiB, ${f('update 32').toFixed(1)} ms at 32 MiB (${(f('update 32') / f('update 8')).toFixed(2)}×)`);
} finally {
  cleanup();
}

/**
 * Commit and capture 170 segments of `PER_SEGMENT` one-row transactions on a
 * fresh shard (the first 20 are warm-up); µs per transaction of each.
 */
function captureCost(path: string, ref: { tenant: string; incarnation: string; epoch: number }, workload: 'appends' | 'random updates'): { commitUs: number; captureUs: number; storedPerTx: number } {
  const ROWS = 200_000;
  const shard = createTestShard(path, ref.tenant, ref.incarnation);
  shard.db.exec('CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)');
  if (workload === 'random updates') {
    shard.db.exec(`WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ${ROWS})
                   INSERT INTO kv (id, v) SELECT x, 'value ' || x || ' ' || hex(randomblob(20)) FROM n`);
  }
  shard.checkpoint();
  const shipper = WalShipper.beginGeneration({ dbPath: path, ...ref, generation: newGenerationId() });
  const insert = shard.db.prepare('INSERT INTO kv (v) VALUES (?)');
  const update = shard.db.prepare('UPDATE kv SET v = ? WHERE id = ?');
  const random = seededRandom(42);
  let commitMs = 0;
  let captureMs = 0;
  let captured = 0;
  let stored = 0;
  for (let seg = 0; seg < 170; seg++) {
    let t = performance.now();
    for (let k = 0; k < PER_SEGMENT; k++) {
      const v = `value ${seg}/${k} ${'x'.repeat(80)}`;
      shard.write(() => (workload === 'appends' ? insert.run(v) : update.run(v, 1 + Math.floor(random() * ROWS))));
    }
    const commit = performance.now() - t;
    t = performance.now();
    const c = shipper.capture();
    const cap = performance.now() - t;
    if (c.kind !== 'segment') throw new Error(`capture: ${c.kind}`);
    shipper.acknowledge(c.maxTxid);
    if (seg >= 20) { // after warm-up
      commitMs += commit;
      captureMs += cap;
      captured += PER_SEGMENT;
      stored += c.bytes.byteLength;
    }
    if (seg % 25 === 24 && shipper.checkpointAllowed()) shipper.noteCheckpoint(shard.checkpoint());
  }
  shipper.close();
  shard.db.close();
  return { commitUs: (commitMs * 1000) / captured, captureUs: (captureMs * 1000) / captured, storedPerTx: stored / captured };
}

/**
 * Process CPU (all threads) per transaction of `captureAsync` over 120 segments of `perSegment` one-row appends on a
 * fresh shard (the first 20 are warm-up), with this thread's `compressInlineBelow` as the caller set it.
 */
async function shipperThreadCapture(path: string, ref: { tenant: string; incarnation: string; epoch: number }, perSegment: number): Promise<number> {
  const shard = createTestShard(path, ref.tenant, ref.incarnation);
  shard.db.exec('CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)');
  shard.checkpoint();
  const shipper = WalShipper.beginGeneration({ dbPath: path, ...ref, generation: newGenerationId() });
  const insert = shard.db.prepare('INSERT INTO kv (v) VALUES (?)');
  let cpuUs = 0;
  let captured = 0;
  for (let seg = 0; seg < 120; seg++) {
    for (let k = 0; k < perSegment; k++) {
      const v = `value ${seg}/${k} ${'x'.repeat(80)}`;
      shard.write(() => insert.run(v));
    }
    const c0 = process.cpuUsage();
    const c = await shipper.captureAsync();
    const cpu = process.cpuUsage(c0);
    if (c.kind !== 'segment') throw new Error(`capture: ${c.kind}`);
    shipper.acknowledge(c.maxTxid);
    if (seg >= 20) {
      cpuUs += cpu.user + cpu.system;
      captured += perSegment;
    }
    // Every ~4 MiB of log, as the replicator's quiet checkpoint.
    if (shipper.checkpointAllowed()) shipper.noteCheckpoint(shard.checkpoint());
  }
  shipper.close();
  shard.db.close();
  return cpuUs / captured;
}

/** CPU per one-row transaction (µs, and its system part) with `wal_checkpoint(mode)` whenever the -wal passes 4 MiB. */
function checkpointCost(path: string, mode: 'TRUNCATE' | 'RESTART' | 'PASSIVE'): { cpuUs: number; sysUs: number } {
  const shard = createTestShard(path, 'bench', 'inc-1');
  shard.db.exec('CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)');
  const insert = shard.db.prepare('INSERT INTO kv (v) VALUES (?)');
  const N = 40_000;
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    shard.write(() => insert.run(`value ${i} ${'x'.repeat(80)}`));
    if (i % 256 === 255 && statSync(`${path}-wal`).size > 4 << 20) shard.db.pragma(`wal_checkpoint(${mode})`);
  }
  const c = process.cpuUsage(c0);
  shard.db.close();
  return { cpuUs: (c.user + c.system) / N, sysUs: c.system / N };
}

/**
 * On a copy of the spread table at `path` (its -wal empty): one-row appends or one-row updates of random rows
 * until the -wal holds `mib` MiB, the replicator's flush of the -wal, then the held checkpoint's RESTART (ms).
 */
async function forcedCheckpointMs(path: string, mib: number, kind: 'append' | 'update'): Promise<number> {
  const db = new Database(path);
  db.pragma('synchronous = NORMAL');
  db.pragma('wal_autocheckpoint = 0');
  const insert = db.prepare('INSERT INTO kv (v) VALUES (?)');
  const update = db.prepare('UPDATE kv SET v = ? WHERE id = ?');
  const random = seededRandom(mib);
  const walBytes = () => { try { return statSync(`${path}-wal`).size; } catch { return 0; } };
  while (walBytes() < mib << 20) {
    if (kind === 'append') insert.run('z'.repeat(200));
    else update.run('y'.repeat(200), 1 + Math.floor(random() * SPREAD_ROWS));
  }
  await syncLogFile(`${path}-wal`);
  const t = performance.now();
  db.pragma('wal_checkpoint(RESTART)');
  const ms = performance.now() - t;
  db.close();
  return ms;
}

/** One tenant's `wal_checkpoint(RESTART)` of an 8 MiB log, and (`flush`) the replicator's flush before it. */
async function heldCheckpointMs(path: string, flush: boolean): Promise<{ checkpointMs: number; flushMs: number }> {
  const shard = createTestShard(path, 'bench', 'inc-1');
  shard.db.exec('CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)');
  const insert = shard.db.prepare('INSERT INTO kv (v) VALUES (?)');
  const row = (i: number) => shard.write(() => insert.run(`value ${i} ${'x'.repeat(80)}`));
  let i = 0;
  while (statSync(`${path}-wal`).size < 8 << 20) row(i++);
  let flushMs = 0;
  if (flush) {
    const t = performance.now();
    await syncLogFile(`${path}-wal`);
    flushMs = performance.now() - t;
    for (let k = 0; k < 300; k++) row(i++);
  }
  const t = performance.now();
  shard.db.pragma('wal_checkpoint(RESTART)');
  const checkpointMs = performance.now() - t;
  shard.db.close();
  return { checkpointMs, flushMs };
}
