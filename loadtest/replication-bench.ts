/**
 * Replication benchmark (issue 3), in one run against one local s3rver bucket:
 *
 * 1. write throughput with replication off, async and sync (and, as a
 *    diagnostic, async to a file:// bucket): a `domicile serve`
 *    child process per mode, the same tenants, connections and statement
 *    (autocannon, closed loop, POST /v1/tenants/:id/query INSERT of ~100 bytes,
 *    tenants in rotation); ratios against off, measured in this run. These
 *    machines are noisy (the same mode varies by ±15 % from one window to the
 *    next), so off, async and async-fs run in interleaved rounds (`--rounds`,
 *    default 3) and the ratio reported is the median of the rounds' ratios;
 *    the node's CPU time per write (all its threads, from /proc) shows where
 *    a ratio comes from;
 * 2. replication lag under that load: `GET /v1/tenants/:id` `replication.lagMs`
 *    (age of the oldest commit not yet in the bucket) sampled for every tenant
 *    every 50 ms, and a direct probe: a write's answer → the node reports its
 *    txid replicated (polled every 5 ms);
 *    With async in the run, each round ends with a bound: replication off
 *    while the bench stores, beside the load, as many objects of the same
 *    size in s3rver as that round's async node uploaded (plain HTTP PUTs,
 *    at the same pace). The node then pays nothing for replication, but
 *    s3rver takes its share of the same cores: the most async can reach on
 *    this machine while the bucket's server runs on it;
 * 3. restore of a 100 MB tenant from the S3 server (offline path: the
 *    `restore()` library behind `domicile restore --from`, every object and
 *    page hash verified, integrity_check), against a plain download of the
 *    same objects measured in the same run; then the CLI as a child process.
 *
 * Not a test. Run: pnpm bench:replication [--quick] [--only load|restore] [--rounds N] [--modes async,async-fs,sync] [--node-env KEY=VALUE]… [--mb N] [--profile FILE] [--profile-node DIR]
 * (`--profile` writes a V8 CPU profile of the library restore runs only;
 * `--profile-node` one per thread of every load node, into DIR/<mode>-<round>.)
 */
import { execFile } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { startDomicile, startS3Server, S3RVER_CREDENTIALS, type DomicileServer, type S3Server } from '@domicile/testkit';
import { FsObjectStore, openObjectStore, type ObjectStore } from '../packages/object-store/src/index.ts';
import { listGenerations, restore } from '../packages/replication/src/index.ts';
import { describeNodeEnv, parseNodeEnv } from './bench/node-env.ts';
import { parseCommandLine, usageError, wholeNumber } from './bench/command-line.ts';
import { scrapeMetrics } from './bench/node-metrics.ts';
import { nodeThreadCpu, processCpuSeconds, threadsPerAnswer, type ThreadCpu } from './bench/process-cpu.ts';

const usage = (message: string): never => usageError('pnpm bench:replication', message);
const opts = parseCommandLine('pnpm bench:replication', {
  quick: { type: 'boolean', default: false },
  only: { type: 'string' },
  mb: { type: 'string' },
  rounds: { type: 'string' },
  modes: { type: 'string' },
  'node-env': { type: 'string', multiple: true },
  profile: { type: 'string' },
  'profile-node': { type: 'string' },
});
const QUICK = opts.quick;
const ONLY = opts.only;
if (ONLY !== undefined && ONLY !== 'load' && ONLY !== 'restore') usage(`--only must be load or restore, got ${JSON.stringify(ONLY)}`);
const RESTORE_MB = opts.mb === undefined ? 100 : Number(opts.mb);
if (!(RESTORE_MB > 0 && RESTORE_MB <= 10_000)) usage(`--mb must be a size in MB from 1 to 10000, got ${JSON.stringify(opts.mb)}`);
const RESTORE_RUNS = 3;
const PROFILE = opts.profile;
const PROFILE_NODE = opts['profile-node'];
/** `--node-env KEY=VALUE` (repeatable): extra environment for every node, e.g. to compare settings. */
const NODE_ENV: Record<string, string> = (() => {
  try {
    return parseNodeEnv(opts['node-env'] ?? []);
  } catch (err) {
    return usage((err as Error).message);
  }
})();
const ALL_MODES = ['off', 'async', 'async-fs', 'sync'] as const;
/** `--modes async-fs,sync` runs only those (off is always run: the ratios need it). */
const MODES = new Set<string>(opts.modes !== undefined ? ['off', ...opts.modes.split(',')] : ALL_MODES);
for (const m of MODES) if (!(ALL_MODES as readonly string[]).includes(m)) usage(`unknown mode ${JSON.stringify(m)} in --modes (known: ${ALL_MODES.join(', ')})`);
const ROUNDS = wholeNumber('pnpm bench:replication', 'rounds', opts.rounds, QUICK ? 1 : 3, 1, 20);
const TENANTS = 8;
const CONNECTIONS = 32;
const WARMUP_S = QUICK ? 1 : 2;
const DURATION_S = QUICK ? 3 : 10;
const ADMIN = 'replication-bench-admin-token-0123456789';
const BIN = fileURLToPath(new URL('../packages/cli/bin/domicile.js', import.meta.url));
const POLICY = `version: 1
regions:
  bench-region: { jurisdiction: xx }
residencies:
  bench:
    regions: [bench-region]
`;
const AWS_ENV = { AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey };
process.env.AWS_ACCESS_KEY_ID = AWS_ENV.AWS_ACCESS_KEY_ID;
process.env.AWS_SECRET_ACCESS_KEY = AWS_ENV.AWS_SECRET_ACCESS_KEY;

type Mode = 'off' | 'async' | 'sync' | 'async-fs' | 'bound';
interface LoadResult {
  mode: Mode; s3rverCpuS: number; nodeCpuS: number; opsPerSec: number; p50Ms: number; p99Ms: number; ok: number; errors: number; lagSamples: number[]; probeLags: number[];
  /** Objects (and their bytes) the node stored in its bucket during the window. */
  uploads: { objects: number; bytes: number };
  /** Held checkpoints during the window and the write pause they cost, summed over tenants (`/metrics`). */
  held: { count: number; pauseS: number };
  /** The node's CPU per write by thread group (µs; undefined without /proc). */
  threads: ThreadCpu | undefined;
}

const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : 'n/a');

const dir = mkdtempSync(join(tmpdir(), 'domicile-repl-bench-'));
const policyPath = join(dir, 'placement.yaml');
writeFileSync(policyPath, POLICY);

async function startNode(s3: S3Server, mode: Mode, prefix: string, nodeArgs: string[] = []): Promise<DomicileServer> {
  return startDomicile({
    nodeArgs,
    env: {
      ...AWS_ENV,
      DOMICILE_POLICY: policyPath,
      DOMICILE_ADMIN_TOKEN: ADMIN,
      DOMICILE_LOG_LEVEL: 'warn',
      DOMICILE_BUCKETS: `bench-region=${mode === 'async-fs' ? `file://${join(dir, 'fs-bucket', prefix)}` : s3.bucketUrl('bench', prefix)}`,
      DOMICILE_REPLICATION: mode === 'off' || mode === 'bound' ? 'off' : 'on',
      DOMICILE_DURABILITY: mode === 'sync' ? 'sync' : 'async',
      ...NODE_ENV,
    },
  });
}

async function must(res: Promise<{ status: number; body: any }>, what: string): Promise<any> {
  const r = await res;
  if (r.status >= 300) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}


/** What the node's replication has done so far (`/metrics`): objects and bytes stored, held checkpoints and their pause. */
async function replicationCounters(node: DomicileServer): Promise<{ objects: number; bytes: number; held: number; heldPauseS: number }> {
  const m = await scrapeMetrics(node.url);
  return {
    objects: m.sum('domicile_replication_uploaded_objects_total'), bytes: m.sum('domicile_replication_uploaded_bytes_total'),
    held: m.sum('domicile_replication_checkpoints_total', { how: 'held' }), heldPauseS: m.sum('domicile_replication_checkpoint_pause_seconds_sum'),
  };
}

/**
 * The bound's side load: `objects` PUTs of `bytes / objects` bytes each into
 * s3rver, evenly paced over `durationS` (at most 8 in flight, as the node's
 * shipper), by plain HTTP from this process (no SDK: its CPU here would be
 * taken from the load generator). Resolves with the PUTs that answered 200.
 */
async function putAlongside(s3: S3Server, prefix: string, upl: { objects: number; bytes: number }, durationS: number): Promise<number> {
  if (upl.objects <= 0) return 0;
  const body = Buffer.alloc(Math.max(1, Math.round(upl.bytes / upl.objects)), 7);
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const gapMs = (durationS * 1000) / upl.objects;
  const t0 = performance.now();
  let ok = 0;
  const put = (i: number) => new Promise<void>((resolve) => {
    const req = httpRequest(`${s3.endpoint}/bench/${prefix}/object-${i}`, { method: 'PUT', agent, headers: { 'content-length': body.byteLength } }, (res) => {
      if (res.statusCode === 200) ok++;
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', () => resolve());
    req.end(body);
  });
  const inflight: Array<Promise<void>> = [];
  for (let i = 0; i < upl.objects; i++) {
    const due = t0 + i * gapMs;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    inflight.push(put(i));
  }
  await Promise.all(inflight);
  agent.destroy();
  return ok;
}

/** One autocannon window over `tenants`; lag sampled alongside. */
async function drive(node: DomicileServer, tenants: string[], durationS: number, sampleLag: boolean): Promise<Omit<LoadResult, 'mode' | 's3rverCpuS' | 'nodeCpuS' | 'uploads' | 'held' | 'threads'>> {
  let i = 0;
  const lat: number[] = [];
  const lagSamples: number[] = [];
  const probeLags: number[] = [];
  let running = true;
  const sampler = (async () => {
    if (!sampleLag) return;
    while (running) {
      for (const t of tenants) {
        const r = (await node.api('GET', `/v1/tenants/${t}`)).body.replication;
        if (r.mode !== 'off') lagSamples.push(r.lagMs);
      }
      await sleep(50);
    }
  })();
  const prober = (async () => {
    if (!sampleLag) return;
    const t = tenants[0]!;
    while (running) {
      const w = await node.api('POST', `/v1/tenants/${t}/query`, { sql: 'INSERT INTO kv (v) VALUES (?)', params: ['probe'] });
      const acked = performance.now();
      if (w.status !== 200) { await sleep(100); continue; }
      const target = (await node.api('GET', `/v1/tenants/${t}`)).body.replication.lastTxid as number;
      for (;;) {
        const r = (await node.api('GET', `/v1/tenants/${t}`)).body.replication;
        if (r.mode === 'off') return;
        if (r.replicatedTxid !== null && r.replicatedTxid >= target) break;
        await sleep(5);
      }
      probeLags.push(performance.now() - acked);
      await sleep(100);
    }
  })();
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const inst = autocannon({
      url: node.url,
      connections: CONNECTIONS,
      duration: durationS,
      pipelining: 1,
      timeout: 10,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
      requests: [{
        method: 'POST',
        setupRequest: (req) => {
          const t = tenants[i++ % tenants.length]!;
          return { ...req, path: `/v1/tenants/${t}/query`, body: JSON.stringify({ sql: 'INSERT INTO kv (v) VALUES (?)', params: [`value ${i} ${'x'.repeat(80)}`] }) };
        },
      }],
    }, (err, res) => (err ? reject(err) : resolve(res)));
    inst.on('response', (_c, status, _b, ms) => { if (status >= 200 && status < 300) lat.push(ms); });
  });
  running = false;
  await Promise.all([sampler, prober]);
  return {
    opsPerSec: result['2xx'] / result.duration, p50Ms: pct(lat, 50), p99Ms: pct(lat, 99),
    ok: result['2xx'], errors: result.errors + result.non2xx, lagSamples, probeLags,
  };
}

/** `alongside`: for the bound, what the round's async node uploaded (stored in s3rver beside the load). */
async function loadPhase(s3: S3Server, mode: Mode, round: number, alongside?: { objects: number; bytes: number }): Promise<LoadResult> {
  const profile = PROFILE_NODE ? ['--cpu-prof', `--cpu-prof-dir=${join(PROFILE_NODE, `${mode}-${round}`)}`] : [];
  const node = await startNode(s3, mode, `load-${mode}-${round}`, profile);
  try {
    const tenants = Array.from({ length: TENANTS }, (_, k) => `bench-${mode}-${k}`);
    for (const t of tenants) {
      await must(node.api('POST', '/v1/tenants', { id: t, residency: 'bench' }), `create ${t}`);
      await must(node.api('POST', `/v1/tenants/${t}/query`, { sql: 'CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)' }), 'create table');
    }
    await drive(node, tenants, WARMUP_S, false);
    const cpu0 = processCpuSeconds(s3.pid);
    const nodeCpu0 = processCpuSeconds(node.pid());
    const up0 = await replicationCounters(node);
    const threads0 = await nodeThreadCpu(node.url);
    const side = alongside ? putAlongside(s3, `bound-${round}`, alongside, DURATION_S) : Promise.resolve(0);
    const r = await drive(node, tenants, DURATION_S, true);
    const sidePuts = await side;
    if (alongside && sidePuts < alongside.objects) throw new Error(`bound: ${sidePuts} of ${alongside.objects} PUTs to s3rver answered 200`);
    const threads = threadsPerAnswer(threads0, await nodeThreadCpu(node.url), r.ok);
    const up1 = await replicationCounters(node);
    const uploads = alongside ?? { objects: up1.objects - up0.objects, bytes: up1.bytes - up0.bytes };
    const held = { count: up1.held - up0.held, pauseS: up1.heldPauseS - up0.heldPauseS };
    return { mode, s3rverCpuS: processCpuSeconds(s3.pid) - cpu0, nodeCpuS: processCpuSeconds(node.pid()) - nodeCpu0, ...r, uploads, held, threads };
  } finally {
    if (PROFILE_NODE) await node.stop(); // the profiles are written on a graceful exit
    await node.dispose();
  }
}

const median = (xs: number[]): number => pct(xs, 50);

/** Several rounds of one mode as one row: median throughput, pooled latencies and lags. */
interface ModeSummary { mode: Mode; runs: LoadResult[]; opsPerSec: number; ratio: number; ratios: number[]; cpuUsPerWrite: number; threads: ThreadCpu | undefined }

function summarize(mode: Mode, runs: LoadResult[], offRuns: LoadResult[]): ModeSummary {
  // Each round's ratio is against the off run of the same round (sync runs once, against the median off).
  const ratios = runs.map((r, i) => r.opsPerSec / (runs.length === offRuns.length ? offRuns[i]!.opsPerSec : median(offRuns.map((o) => o.opsPerSec))));
  return {
    mode, runs, ratios,
    opsPerSec: median(runs.map((r) => r.opsPerSec)),
    ratio: median(ratios),
    cpuUsPerWrite: median(runs.map((r) => (r.nodeCpuS * 1e6) / Math.max(1, r.ok))),
    threads: medianThreads(runs),
  };
}

/** Each thread group's median over the runs (µs per write); undefined when a run has none. */
function medianThreads(runs: LoadResult[]): ThreadCpu | undefined {
  const all = runs.map((r) => r.threads);
  if (all.length === 0 || all.some((t) => t === undefined)) return undefined;
  const m = (k: keyof ThreadCpu) => median(all.map((t) => t![k]));
  return { main: m('main'), workers: m('workers'), shipper: m('shipper'), other: m('other') };
}

/** `main / workers / shipper / other` in µs per write. */
function threadText(t: ThreadCpu | undefined): string {
  return t === undefined ? 'n/a' : `${fmt(t.main)} / ${fmt(t.workers)} / ${fmt(t.shipper)} / ${fmt(t.other)}`;
}

/** Fill a tenant to `mb` MB through the node (1 MB batches of table + index rows), let it replicate, stop the node gracefully. */
async function buildBigTenant(s3: S3Server, mb: number): Promise<{ prefix: string; tenant: string; fillS: number }> {
  const prefix = 'restore';
  const tenant = 'big';
  const node = await startNode(s3, 'async', prefix);
  try {
    await must(node.api('POST', '/v1/tenants', { id: tenant, residency: 'bench' }), 'create big');
    await must(node.api('POST', `/v1/tenants/${tenant}/query`, {
      sql: 'CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, score REAL, note TEXT)',
    }), 'create table');
    await must(node.api('POST', `/v1/tenants/${tenant}/query`, { sql: 'CREATE INDEX users_email ON users(email)' }), 'create index');
    const t0 = performance.now();
    // ~10k rows ≈ 1 MB of table + index per statement, text that compresses about as real rows do.
    for (let from = 0; ; from += 10_000) {
      await must(node.api('POST', `/v1/tenants/${tenant}/query`, {
        sql: `WITH RECURSIVE n(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM n WHERE x < ?)
              INSERT INTO users (name, email, score, note)
              SELECT 'user ' || x, 'user' || x || '@example.com', abs(random() % 100000) / 100.0, 'note ' || (x % 977) || ' ' || substr('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', 1, x % 50) FROM n`,
        params: [from, from + 9_999],
      }), 'fill');
      if (from % 100_000 === 0) {
        const size = (await must(node.api('POST', `/v1/tenants/${tenant}/query`, { sql: 'SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()' }), 'size')).rows[0][0];
        if (size >= mb * 1e6) break;
      }
    }
    const fillS = (performance.now() - t0) / 1000;
    for (let k = 0; k < 600; k++) {
      const r = (await node.api('GET', `/v1/tenants/${tenant}`)).body.replication;
      if (r.lagMs === 0 && r.replicatedTxid === r.lastTxid) break;
      await sleep(100);
    }
    if ((await node.stop()) !== 0) throw new Error('node did not stop cleanly');
    return { prefix, tenant, fillS };
  } finally {
    await node.dispose();
  }
}

async function restorePhase(s3: S3Server): Promise<string[]> {
  const lines: string[] = [];
  const { prefix, tenant, fillS } = await buildBigTenant(s3, RESTORE_MB);
  const store: ObjectStore = openObjectStore(s3.bucketUrl('bench', prefix), { s3: { credentials: S3RVER_CREDENTIALS } });
  try {
    let incarnation = '';
    let objects = 0;
    let stored = 0;
    for await (const e of store.list(`tenants/${tenant}/`)) { incarnation ||= e.key.split('/')[2]!; objects++; stored += e.size; }
    const g = (await listGenerations(store, tenant, incarnation)).at(-1)!;
    const ref = { tenant, incarnation, epoch: g.epoch, generation: g.generation };
    console.log(`big tenant filled in ${fmt(fillS, 1)} s; bucket: ${objects} objects, ${fmt(stored / 1e6, 1)} MB stored (${g.snapshots.length} snapshot(s), ${g.segmentCount} segments)`);

    // Baseline: fetch every object once, sequentially, and throw it away.
    let t0 = performance.now();
    let fetched = 0;
    for await (const e of store.list(`tenants/${tenant}/`)) fetched += (await store.get(e.key)).byteLength;
    const downloadS = (performance.now() - t0) / 1000;

    // The same objects in a file:// bucket: restore without the S3 transfer (where the time goes).
    const fsStore = new FsObjectStore(join(dir, 'fs-copy'));
    for await (const e of store.list(`tenants/${tenant}/`)) await fsStore.put(e.key, await store.get(e.key));
    const fsRuns: number[] = [];
    for (let k = 0; k < RESTORE_RUNS; k++) {
      const out = join(dir, `restored-fs-${k}.db`);
      t0 = performance.now();
      const r = await restore({ store: fsStore, ref, outPath: out });
      fsRuns.push(r.bytes / 1e6 / ((performance.now() - t0) / 1000));
      rmSync(out, { force: true });
    }

    const runs: Array<{ s: number; bytes: number }> = [];
    const session = PROFILE ? new Session() : undefined;
    if (session) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    for (let k = 0; k < RESTORE_RUNS; k++) {
      const out = join(dir, `restored-${k}.db`);
      t0 = performance.now();
      const r = await restore({ store, ref, outPath: out });
      runs.push({ s: (performance.now() - t0) / 1000, bytes: r.bytes });
      rmSync(out, { force: true });
    }
    if (session) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(PROFILE!, JSON.stringify(profile));
      session.disconnect();
    }
    const best = runs.reduce((a, b) => (a.s <= b.s ? a : b));
    const mbps = best.bytes / 1e6 / best.s;
    const dlMbps = best.bytes / 1e6 / downloadS;

    const cliOut = join(dir, 'restored-cli.db');
    t0 = performance.now();
    const cli = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [BIN, 'restore', tenant, '--from', s3.bucketUrl('bench', prefix), '--out', cliOut, '--json'],
        { env: { ...process.env, ...AWS_ENV }, timeout: 600_000 }, (err, _out, stderr) => resolve({ code: err ? 1 : 0, stderr }));
    });
    const cliS = (performance.now() - t0) / 1000;
    if (cli.code !== 0) throw new Error(`CLI restore failed: ${cli.stderr}`);
    const cliBytes = statSync(cliOut).size;

    lines.push(
      `| restore (library, offline path), best of ${runs.length} | ${fmt(best.bytes / 1e6, 1)} MB in ${fmt(best.s, 2)} s | **${fmt(mbps, 0)} MB/s** (runs: ${runs.map((r) => `${fmt(r.bytes / 1e6 / r.s, 0)}`).join(', ')}) |`,
      `| baseline: download the same ${objects} objects (${fmt(fetched / 1e6, 1)} MB stored), no decoding | ${fmt(downloadS, 2)} s | ${fmt(dlMbps, 0)} MB/s of database (restore/download ${fmt(downloadS / best.s, 2)}×) |`,
      `| the same objects from a file:// bucket (no S3), best of ${fsRuns.length} | | ${fmt(Math.max(...fsRuns), 0)} MB/s (runs: ${fsRuns.map((x) => fmt(x, 0)).join(', ')}) |`,
      `| \`domicile restore --from\` child process (incl. startup) | ${fmt(cliBytes / 1e6, 1)} MB in ${fmt(cliS, 2)} s | ${fmt(cliBytes / 1e6 / cliS, 0)} MB/s |`,
    );
    console.log(`restore: ${fmt(mbps, 0)} MB/s (${fmt(best.bytes / 1e6, 1)} MB in ${fmt(best.s, 2)} s); download only: ${fmt(dlMbps, 0)} MB/s; CLI: ${fmt(cliBytes / 1e6 / cliS, 0)} MB/s`);
    lines.push('', `Goal restore ≥ 100 MB/s: **${mbps >= 100 ? 'met' : 'not met'}** (${fmt(mbps, 0)} MB/s).`);
  } finally {
    store.close?.();
  }
  return lines;
}

async function main(): Promise<void> {
  const machine = `${cpus()[0]?.model} × ${cpus().length}, ${fmt(totalmem() / 2 ** 30, 1)} GiB, Node ${process.version}, ${process.platform}; load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`;
  console.log(`machine: ${machine}`);
  const s3 = await startS3Server({ buckets: ['bench'] });
  const envNote = Object.keys(NODE_ENV).length > 0 ? ` Node environment: ${describeNodeEnv(NODE_ENV)}.` : '';
  const report: string[] = [`Machine: ${machine}. s3rver 3.7.1 child process on loopback (one bucket), \`domicile serve\` child process with 2 SQLite workers, log level warn.${envNote}`, ''];
  try {
    if (!ONLY || ONLY === 'load') {
      const runs = new Map<Mode, LoadResult[]>([['off', []], ['async', []], ['sync', []], ['async-fs', []], ['bound', []]]);
      const schedule: Array<[Mode, number]> = [];
      for (let round = 0; round < ROUNDS; round++) for (const mode of ['off', 'async', 'async-fs', 'bound'] as const) if (MODES.has(mode) || (mode === 'bound' && MODES.has('async'))) schedule.push([mode, round]);
      if (MODES.has('sync')) schedule.push(['sync', 0]); // slow and without a goal: once
      for (const [mode, round] of schedule) {
        const r = await loadPhase(s3, mode, round, mode === 'bound' ? runs.get('async')![round]!.uploads : undefined);
        runs.get(mode)!.push(r);
        console.log(`${`${mode} #${round + 1}`.padEnd(11)} ${fmt(r.opsPerSec)} writes/s  p50 ${fmt(r.p50Ms, 1)} ms  p99 ${fmt(r.p99Ms, 1)} ms  errors ${r.errors}  node CPU ${fmt((r.nodeCpuS * 1e6) / Math.max(1, r.ok))} µs/write (${threadText(r.threads)})  lag p50/p99 ${fmt(pct(r.lagSamples, 50))}/${fmt(pct(r.lagSamples, 99))} ms  probe ack→bucket p50/p99 ${fmt(pct(r.probeLags, 50), 1)}/${fmt(pct(r.probeLags, 99), 1)} ms  held checkpoints ${r.held.count} (pause mean ${r.held.count > 0 ? fmt((r.held.pauseS * 1000) / r.held.count, 1) : 'n/a'} ms, total ${fmt(r.held.pauseS, 2)} s)  uploads ${r.uploads.objects} (${r.uploads.objects > 0 ? fmt(r.uploads.bytes / r.uploads.objects / 1024, 1) : 'n/a'} KiB mean)  s3rver CPU ${fmt(r.s3rverCpuS, 1)} s`);
      }
      const off = runs.get('off')!;
      const rows = (['off', 'async', 'sync', 'async-fs', 'bound'] as const).filter((m) => runs.get(m)!.length > 0).map((m) => summarize(m, runs.get(m)!, off));
      const row = (m: Mode) => rows.find((r) => r.mode === m);
      const pooled = (xs: LoadResult[], f: (r: LoadResult) => number[]) => xs.flatMap(f);
      report.push(
        `Load: ${TENANTS} tenants, ${CONNECTIONS} connections, autocannon closed loop in the bench process, ${DURATION_S} s measured after ${WARMUP_S} s warm-up, one INSERT of ~100 bytes per request, tenants in rotation; a fresh node per run. ${ROUNDS} interleaved round(s) of off → async → async-fs → bound, then sync once; bound: replication off while the bench stores in s3rver, beside the load, as many objects of the same mean size as that round's async node uploaded in its window (plain HTTP PUTs, evenly paced, ≤ 8 in flight): the node pays nothing for replication, s3rver takes its share of the cores; writes/s is the median of a mode's runs, the ratio the median of each round's ratio to that round's off run (sync: to the median off). Node CPU: user + system time of the node process (every thread) during the window, per acknowledged write (median of runs); by thread: the same window from the node's \`domicile_thread_cpu_seconds_total\` (event loop, SQLite workers, replication shipper, the rest: GC, the libuv pool's fsyncs and compression), each the median of runs. Lag: \`replication.lagMs\` of every tenant sampled every 50 ms; probe: one write at a time to the first tenant, from its answer until \`replicatedTxid\` reaches the txid seen right after (polled every 5 ms); both pooled over the runs. Held checkpoints (per-run lines): the window's increase of the node's \`domicile_replication_checkpoints_total{how="held"}\` and of the sum of \`domicile_replication_checkpoint_pause_seconds\`, over all tenants.`,
        '',
        '| replication | writes/s (runs) | ratio vs off (rounds) | node CPU per write | by thread: main / workers / shipper / other | p50 | p99 | errors | lagMs p50 / p99 (samples) | probe answer→bucket p50 / p99 | s3rver CPU |',
        '|---|---|---|---|---|---|---|---|---|---|---|',
        ...rows.map((r) => {
          const lags = pooled(r.runs, (x) => x.lagSamples);
          const probes = pooled(r.runs, (x) => x.probeLags);
          return `| ${r.mode} | ${fmt(r.opsPerSec)} (${r.runs.map((x) => fmt(x.opsPerSec)).join(', ')}) | **${fmt(r.ratio, 2)}×** (${r.ratios.map((x) => fmt(x, 2)).join(', ')}) | ${fmt(r.cpuUsPerWrite)} µs | ${threadText(r.threads)} µs | ${fmt(median(r.runs.map((x) => x.p50Ms)), 1)} ms | ${fmt(median(r.runs.map((x) => x.p99Ms)), 1)} ms | ${r.runs.reduce((a, x) => a + x.errors, 0)} | ${r.mode === 'off' || r.mode === 'bound' ? 'n/a' : `${fmt(pct(lags, 50))} / ${fmt(pct(lags, 99))} ms (${lags.length})`} | ${r.mode === 'off' || r.mode === 'bound' ? 'n/a' : `${fmt(pct(probes, 50), 1)} / ${fmt(pct(probes, 99), 1)} ms (${probes.length})`} | ${fmt(median(r.runs.map((x) => x.s3rverCpuS)), 1)} s |`;
        }),
        '',
      );
      const a = row('async');
      const [sync, fs, offRow, bound] = [row('sync'), row('async-fs'), row('off')!, row('bound')];
      const aLag = a ? Math.max(pct(pooled(a.runs, (x) => x.lagSamples), 99), pct(pooled(a.runs, (x) => x.probeLags), 99)) : NaN;
      const goals = [
        ...(a ? [`async ≥ 0.9× off: **${a.ratio >= 0.9 ? 'met' : 'not met'}** (${fmt(a.ratio, 2)}×) · async lag p99 ≤ 1 s: **${aLag <= 1000 ? 'met' : 'not met'}** (${fmt(aLag)} ms, the larger of the two measures)`] : []),
        ...(sync ? [`sync: ${fmt(sync.ratio, 2)}× off (no goal)`] : []),
        ...(fs ? [`async to a file:// bucket instead of s3rver (diagnostic row): ${fmt(fs.ratio, 2)}× off`] : []),
        ...(bound ? [`bound (off, s3rver storing the async run's objects beside it): ${fmt(bound.ratio, 2)}× off — the most async can reach while s3rver shares these cores`] : []),
      ];
      const cpu = [a, fs].filter((r): r is ModeSummary => r !== undefined).map((r) => `${r.mode} +${fmt(r.cpuUsPerWrite - offRow.cpuUsPerWrite)} µs`);
      report.push(`Goals: ${goals.join(' · ')}.${cpu.length > 0 ? ` Replication's node CPU per write over off: ${cpu.join(', ')}.` : ''}`, '');
    }
    if (!ONLY || ONLY === 'restore') {
      report.push(`Restore: one tenant filled through the node to ≥ ${RESTORE_MB} MB (users table + email index, ~10k rows per statement) with async replication, node stopped gracefully, then restored from the bucket in the bench process.`, '',
        '| measurement | size / time | speed |', '|---|---|---|');
      report.push(...(await restorePhase(s3)));
    }
  } finally {
    await s3.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log('\n--- markdown for loadtest/RESULTS.md ---\n');
  console.log(report.join('\n'));
}

await main();
