/**
 * Shard layer benchmark: the pool (worker threads, statement guard, handle
 * cache) against raw better-sqlite3 in-process with the same pragmas, measured
 * in the same run. Not a test. Run: node --import tsx loadtest/shard-bench.ts
 *
 * 1. cold: open + first query + close per shard. Pool: one handle per worker,
 *    so every request to another tenant opens its shard and evicts (checkpoint
 *    + close) the previous one. Raw: open, pragmas, query, close.
 * 2. hot point reads: one tenant, 10k rows, `SELECT v FROM kv WHERE k = ?`,
 *    one request at a time; latency p50/p99. Raw: the same statement
 *    prepared per call (as the pool does) and prepared once (best case).
 * 3. throughput: 100 tenants, 64 requests in flight, point reads; raw is a
 *    single-threaded loop over the same reads.
 */
import { cpus, tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type DatabaseType from 'better-sqlite3';
import { ShardPool, shardPath, type ShardRef } from '../packages/shard/src/index.ts';
import { CACHE_SIZE_KIB, WAL_AUTOCHECKPOINT_PAGES } from '../packages/shard/src/open-shard.ts';

// better-sqlite3 is a dependency of the shard package, not of the workspace root.
const Database = createRequire(new URL('../packages/shard/package.json', import.meta.url))('better-sqlite3') as typeof DatabaseType;

const WORKERS = Math.max(2, Math.min(4, cpus().length));
const COLD_SHARDS = 400;
const HOT_READS = 20_000;
const ROWS = 10_000;
const THROUGHPUT_TENANTS = 100;
const THROUGHPUT_READS = 40_000;
const INFLIGHT = 64;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;

function rawOpen(path: string): DatabaseType.Database {
  const db = new Database(path, { fileMustExist: true });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('temp_store = MEMORY');
  db.pragma(`cache_size = -${CACHE_SIZE_KIB}`);
  db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
  db.pragma(`max_page_count = ${Math.floor((1 << 30) / 4096)}`);
  return db;
}

async function main(): Promise<void> {
  const cpu = cpus();
  console.log(`machine: ${cpu[0]?.model ?? 'unknown'} × ${cpu.length}, node ${process.version}, ${process.platform}`);
  console.log(`pool: ${WORKERS} workers, statement guard on; raw: better-sqlite3 in-process on the main thread\n`);
  const dir = mkdtempSync(join(tmpdir(), 'domicile-bench-'));
  const ref = (t: string): ShardRef => ({ tenant: t, incarnation: 'bench', path: shardPath(dir, t), epoch: 1 });
  const setupPool = new ShardPool({ workers: WORKERS, maxOpenShards: 1000, statementTimeoutMs: 5000, maxResultBytes: 16 << 20, maxDbBytes: 1 << 30 });
  await setupPool.start();
  const cold = Array.from({ length: COLD_SHARDS }, (_, i) => ref(`cold${i}`));
  const hot = ref('hot');
  const many = Array.from({ length: THROUGHPUT_TENANTS }, (_, i) => ref(`many${i}`));
  const seed = [{ sql: 'CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)' }, { sql: `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${ROWS}) INSERT INTO kv SELECT x, printf('value-%08d', x) FROM c` }];
  await Promise.all([...cold, hot, ...many].map(async (t) => {
    await setupPool.create(t);
    await setupPool.batch(t, seed);
  }));
  await setupPool.close();

  // 1. cold open + first query + close
  const coldPool = new ShardPool({ workers: WORKERS, maxOpenShards: WORKERS, statementTimeoutMs: 5000, maxResultBytes: 16 << 20, maxDbBytes: 1 << 30 });
  await coldPool.start();
  let t0 = performance.now();
  for (const t of cold) await coldPool.query(t, { sql: 'SELECT v FROM kv WHERE k = ?', params: [7] });
  const poolCold = (performance.now() - t0) / cold.length;
  const coldStats = coldPool.stats();
  await coldPool.close();
  t0 = performance.now();
  for (const t of cold) {
    const db = rawOpen(t.path);
    db.prepare('SELECT v FROM kv WHERE k = ?').get(7);
    db.close();
  }
  const rawCold = (performance.now() - t0) / cold.length;
  console.log('1. open + first query + close, per shard, sequential');
  console.log(`   pool ${us(poolCold)}   raw ${us(rawCold)}   ratio ${(poolCold / rawCold).toFixed(2)}×   (pool opens ${coldStats.opens}, evictions ${coldStats.evictions})\n`);

  // 2. hot point reads
  const pool = new ShardPool({ workers: WORKERS, maxOpenShards: 1000, statementTimeoutMs: 5000, maxResultBytes: 16 << 20, maxDbBytes: 1 << 30 });
  await pool.start();
  const keys = Array.from({ length: HOT_READS }, () => 1 + Math.floor(Math.random() * ROWS));
  for (let i = 0; i < 500; i++) await pool.query(hot, { sql: 'SELECT v FROM kv WHERE k = ?', params: [keys[i]!] });
  const poolLat: number[] = [];
  for (const k of keys) {
    const s = performance.now();
    await pool.query(hot, { sql: 'SELECT v FROM kv WHERE k = ?', params: [k] });
    poolLat.push(performance.now() - s);
  }
  const raw = rawOpen(hot.path);
  const rawLat: number[] = [];
  const rawOnceLat: number[] = [];
  const once = raw.prepare('SELECT v FROM kv WHERE k = ?');
  for (const k of keys) {
    let s = performance.now();
    raw.prepare('SELECT v FROM kv WHERE k = ?').raw(true).get(k);
    rawLat.push(performance.now() - s);
    s = performance.now();
    once.get(k);
    rawOnceLat.push(performance.now() - s);
  }
  raw.close();
  for (const a of [poolLat, rawLat, rawOnceLat]) a.sort((x, y) => x - y);
  console.log(`2. hot point read latency, one at a time, ${HOT_READS} reads`);
  console.log(`   pool              p50 ${us(pct(poolLat, 50))}  p99 ${us(pct(poolLat, 99))}`);
  console.log(`   raw, prepare/call p50 ${us(pct(rawLat, 50))}  p99 ${us(pct(rawLat, 99))}   pool/raw p50 ${(pct(poolLat, 50) / pct(rawLat, 50)).toFixed(1)}×`);
  console.log(`   raw, prepared     p50 ${us(pct(rawOnceLat, 50))}  p99 ${us(pct(rawOnceLat, 99))}   pool/raw p50 ${(pct(poolLat, 50) / pct(rawOnceLat, 50)).toFixed(1)}×\n`);

  await pool.close();

  // 3. throughput, with one and two requests posted per worker
  const raws = many.map((t) => rawOpen(t.path));
  t0 = performance.now();
  for (let i = 0; i < THROUGHPUT_READS; i++) raws[i % raws.length]!.prepare('SELECT v FROM kv WHERE k = ?').get(1 + (i % ROWS));
  const rawOps = THROUGHPUT_READS / ((performance.now() - t0) / 1000);
  for (const r of raws) r.close();
  console.log(`3. point-read throughput, ${THROUGHPUT_TENANTS} tenants, ${INFLIGHT} requests in flight`);
  console.log(`   raw single thread ${Math.round(rawOps)} ops/s`);
  for (const messagesPerWorker of [1, 2]) {
    const tp = new ShardPool({ workers: WORKERS, maxOpenShards: 1000, statementTimeoutMs: 5000, maxResultBytes: 16 << 20, maxDbBytes: 1 << 30, messagesPerWorker });
    await tp.start();
    for (const t of many) await tp.query(t, { sql: 'SELECT 1' });
    let next = 0;
    t0 = performance.now();
    await Promise.all(Array.from({ length: INFLIGHT }, async () => {
      while (next < THROUGHPUT_READS) {
        const i = next++;
        await tp.query(many[i % many.length]!, { sql: 'SELECT v FROM kv WHERE k = ?', params: [1 + (i % ROWS)] });
      }
    }));
    const poolOps = THROUGHPUT_READS / ((performance.now() - t0) / 1000);
    await tp.close();
    console.log(`   pool, ${messagesPerWorker} messages per worker ${Math.round(poolOps)} ops/s   pool/raw ${(poolOps / rawOps).toFixed(2)}×`);
  }
  rmSync(dir, { recursive: true, force: true });
}

await main();
