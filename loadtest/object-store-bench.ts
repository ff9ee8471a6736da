/**
 * What one upload costs the node: CPU time (user + system, every thread of
 * this process, so the thread pool's fsyncs count) and wall time per put of a
 * 15 KB object — a busy tenant's segment — through each ObjectStore, against
 * a baseline measured in the same run: one durable file write
 * (`writeFile` with `flush`) of the same bytes.
 *
 *   pnpm bench:object-store [--puts N] [--rounds N] [--no-append]
 *
 * S3 is a local s3rver child process: its own CPU is not counted (a real
 * bucket runs elsewhere); the client's is, which is what a node pays. The
 * S3 store is measured both ways it can put (lean-put.ts): the lean request
 * (the default) and the SDK command alone (`leanPut=false`), alternating in
 * `--rounds` rounds (median per row; these machines drift within a minute).
 * Appends its result to RESULTS.md (newest first) unless --no-append.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FsObjectStore, openObjectStore, type ObjectStore, type S3ObjectStore } from '../packages/object-store/src/index.ts';
import { S3RVER_CREDENTIALS, startS3Server } from '@domicile/testkit';
import { machineLine, median, publishResults } from './bench/report.ts';
import { parseCommandLine, wholeNumber } from './bench/command-line.ts';

const values = parseCommandLine('pnpm bench:object-store', { puts: { type: 'string' }, rounds: { type: 'string' }, 'no-append': { type: 'boolean', default: false } });
const PUTS = wholeNumber('pnpm bench:object-store', 'puts', values.puts, 400, 10, 100_000);
const ROUNDS = wholeNumber('pnpm bench:object-store', 'rounds', values.rounds, 3, 1, 20);
const WARMUP = 50;
const body = Buffer.alloc(15_000, 7);

/** CPU µs and wall ms per call of `put(i)`, after a warm-up, calls one at a time (as one tenant's passes are). */
async function measure(put: (i: number) => Promise<unknown>): Promise<{ cpuUs: number; wallMs: number }> {
  for (let i = 0; i < WARMUP; i++) await put(-1 - i);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < PUTS; i++) await put(i);
  const c = process.cpuUsage(c0);
  return { cpuUs: (c.user + c.system) / PUTS, wallMs: (performance.now() - t0) / PUTS };
}

const key = (i: number) => `tenants/bench/inc/generations/0000000000000001-g/segments/${String(i + 1000).padStart(16, '0')}.seg`;
const dir = mkdtempSync(path.join(tmpdir(), 'domicile-store-bench-'));
const s3 = await startS3Server({ buckets: ['bench'] });
try {
  console.error(`machine: ${machineLine()}`);
  const rows: Array<[string, { cpuUs: number; wallMs: number }]> = [];
  rows.push(['baseline: `writeFile(tmp, body, {flush: true})`', await measure((i) => writeFile(path.join(dir, `plain-${i}`), body, { flush: true }))]);
  const fs: ObjectStore = new FsObjectStore(path.join(dir, 'bucket'));
  rows.push(['`FsObjectStore.put` (write-once: temp file, fsync, link, fsync folder)', await measure((i) => fs.put(key(i), body, { ifNoneMatch: true }))]);
  const s3rows = [
    { name: '`S3ObjectStore.put` to s3rver, lean request (the default; client side only)', url: s3.bucketUrl('bench', 'lean'), runs: [] as Array<{ cpuUs: number; wallMs: number }> },
    { name: '`S3ObjectStore.put` to s3rver, `leanPut=false` (PutObjectCommand via the AWS SDK; client side only)', url: `${s3.bucketUrl('bench', 'sdk')}&leanPut=false`, runs: [] as Array<{ cpuUs: number; wallMs: number }> },
  ];
  for (let round = 0; round < ROUNDS; round++) {
    for (const row of round % 2 === 0 ? s3rows : [...s3rows].reverse()) {
      const store = openObjectStore(row.url, { s3: { credentials: S3RVER_CREDENTIALS } });
      try {
        row.runs.push(await measure((i) => store.put(`r${round}/${key(i)}`, body, { ifNoneMatch: true })));
        const stats = (store as S3ObjectStore).putStats;
        if (stats.leanFailures > 0) throw new Error(`${row.name}: ${stats.leanFailures} lean attempts failed (${stats.leanOff ?? 'suspended'})`);
      } finally {
        store.close();
      }
      console.error(`round ${round + 1}: ${row.name.slice(0, 60)}… ${Math.round(row.runs.at(-1)!.cpuUs)} µs`);
    }
  }
  for (const row of s3rows) rows.push([`${row.name} (runs: ${row.runs.map((r) => Math.round(r.cpuUs)).join(', ')} µs)`, { cpuUs: median(row.runs.map((r) => r.cpuUs)), wallMs: median(row.runs.map((r) => r.wallMs)) }]);
  const perRound = s3rows[0]!.runs.map((r, i) => r.cpuUs / s3rows[1]!.runs[i]!.cpuUs);
  const base = rows[0]![1].cpuUs;
  const md = [
    `## Object store: CPU per upload (\`pnpm bench:object-store\`), ${new Date().toISOString().slice(0, 10)}`,
    '',
    `Command: \`${['pnpm bench:object-store', ...process.argv.slice(2)].join(' ')}\`, ${new Date().toISOString()}.`,
    `Machine: ${machineLine()}.`,
    '',
    `Method: ${PUTS} puts of a 15 KB object one after another (after ${WARMUP} of warm-up) per row, in this process; CPU = user + system time of the process (every thread, so the thread pool's fsyncs count) per put. s3rver 3.7.1 is a child process on loopback; its own CPU is not counted. The two S3 rows alternate over ${ROUNDS} round(s) (each a fresh store), the median of the rounds shown.`,
    '',
    '| put | CPU per put | ratio to baseline | wall per put |',
    '|---|---|---|---|',
    ...rows.map(([name, r]) => `| ${name} | ${Math.round(r.cpuUs).toLocaleString('en-US')} µs | ${(r.cpuUs / base).toFixed(1)}× | ${r.wallMs.toFixed(2)} ms |`),
    '',
    `Lean request against the SDK command, CPU per put, each round: ${perRound.map((r) => `${r.toFixed(2)}×`).join(', ')} (median ${median(perRound).toFixed(2)}×).`,
    '',
  ].join('\n');
  publishResults(md, !values['no-append']);
} finally {
  await s3.stop();
  rmSync(dir, { recursive: true, force: true });
}
