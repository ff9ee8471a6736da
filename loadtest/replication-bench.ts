/**
 * Replication benchmark (issue 3), in one run against one local s3rver bucket:
 *
 * 1. write throughput with replication off, async and sync (and, as a
 *    diagnostic, async to a file:// bucket): a `domicile serve` child process
 *    per replication setting, started together with the same tenants;
 *    autocannon (closed loop, POST /v1/tenants/:id/query INSERT of ~100 bytes,
 *    tenants in rotation) drives one node at a time. These machines drift by
 *    ±15 % (sometimes 2×) within a minute, and a 10-second window per mode
 *    measured that drift more than replication. So the load moves between
 *    the nodes in short **slices** (`--slice`, default 3 s counted after a
 *    1 s ramp that is not), one slice per mode in each **cycle** (`--cycles`,
 *    default the fewest whole sets of orders that make 10 or more: 12 for
 *    four modes), in orders where every mode follows every other one equally
 *    often and none runs twice in a row (`sliceOrders`, bench/cycles.ts: what
 *    a slice leaves behind — an async node ships and checkpoints for a while
 *    after its load stops — falls on every mode alike; until 2026-12-07 the
 *    order was reversed every other cycle, which gave the first and the last
 *    mode two slices in a row and async never); every `--node-cycles` cycles (default 2) all the nodes
 *    are replaced by fresh processes, because two processes of one build can
 *    differ by several per cent for their whole life. A mode's ratio is the
 *    median over the cycles of its slice against that cycle's off slice.
 *    The ramp lets the node that just took the load reach its steady
 *    state (async ships every 500 ms) and the one that lost it finish what it
 *    had in hand, outside both counted windows. The node's CPU time per write
 *    (all its threads, from /proc, and by thread from its /metrics) shows
 *    where a ratio comes from;
 *    With async in the run, each cycle has a **bound** slice: a node
 *    without replication of its own (so every node takes the same load)
 *    while the bench stores, beside the load, as many objects of the same
 *    size in s3rver as the async node uploaded in its latest slice (plain HTTP
 *    PUTs, at the same pace). The node then pays nothing for replication, but
 *    s3rver takes its share of the same cores: the most async can reach on
 *    this machine while the bucket's server runs on it. An **off-again**
 *    slice per cycle drives a second node without replication: its ratio to
 *    off is the method's own noise in that run (two identical nodes). An
 *    **async-b** node (`--modes async-b` with `--node-env-b KEY=VALUE` or `--bucket-params-b KEY=VALUE`) is
 *    async with other settings, in the same cycles: an A/B test of a setting,
 *    reported against off and against async. Sync
 *    runs once, after the cycles (slow, and without a goal), against the
 *    median off slice;
 * 2. replication lag under that load, in a window of its own per replicated
 *    mode after the cycles (so the throughput slices carry no extra requests):
 *    `GET /v1/tenants/:id` `replication.lagMs` (age of the oldest commit not
 *    yet in the bucket) sampled for every tenant every 50 ms, and a direct
 *    probe: a write's answer → the node reports its txid replicated (polled
 *    every 5 ms);
 * 3. restore of a 100 MB tenant from the S3 server (offline path: the
 *    `restore()` library behind `domicile restore --from`, every object and
 *    page hash verified, integrity_check), against a plain download of the
 *    same objects measured in the same run; then the CLI as a child process.
 *
 * Not a test. Run: pnpm bench:replication [--quick] [--only load|restore] [--cycles N] [--slice S] [--node-cycles N] [--modes async,async-fs,async-b,sync,off-again] [--node-env KEY=VALUE]… [--node-env-b KEY=VALUE]… [--bucket-params-b KEY=VALUE]… [--mb N] [--profile FILE] [--profile-node DIR]
 * (`--profile` writes a V8 CPU profile of the library restore runs only;
 * `--profile-node` one per thread of every load node, into DIR/<mode>-<set>.)
 */
import { execFile } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { startDomicile, startS3Server, S3RVER_CREDENTIALS, type DomicileServer, type S3Server } from '@domicile/testkit';
import { FsObjectStore, openObjectStore, type ObjectStore } from '../packages/object-store/src/index.ts';
import { listGenerations, restore } from '../packages/replication/src/index.ts';
import { describeNodeEnv, parseNodeEnv } from './bench/node-env.ts';
import { parseCommandLine, usageError, wholeNumber } from './bench/command-line.ts';
import { cycleRatios, orderSetSize, sliceOrders } from './bench/cycles.ts';
import { selectModes, type ReplicationMode } from './bench/replication-modes.ts';
import { scrapeMetrics, type NodeMetrics } from './bench/node-metrics.ts';
import { machineCpuSeconds, processCpuSeconds, threadsPerAnswer, type MachineCpu, type ThreadCpu } from './bench/process-cpu.ts';
import { bootstrapMedianInterval, machineLine, median, pct } from './bench/report.ts';
import { seededRandom } from '@domicile/testkit/random';

const usage = (message: string): never => usageError('pnpm bench:replication', message);
const opts = parseCommandLine('pnpm bench:replication', {
  quick: { type: 'boolean', default: false },
  only: { type: 'string' },
  mb: { type: 'string' },
  cycles: { type: 'string' },
  slice: { type: 'string' },
  'node-cycles': { type: 'string' },
  modes: { type: 'string' },
  'node-env': { type: 'string', multiple: true },
  'node-env-b': { type: 'string', multiple: true },
  'bucket-params-b': { type: 'string', multiple: true },
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
/**
 * `--node-env-b KEY=VALUE` (repeatable): more environment for the async-b node only, on top of
 * `--node-env`: a setting against async's in the same run, in the same cycles (an A/B test; runs
 * minutes apart on these machines differ by more than most settings do).
 */
const NODE_ENV_B: Record<string, string> = (() => {
  try {
    return parseNodeEnv(opts['node-env-b'] ?? [], '--node-env-b');
  } catch (err) {
    return usage((err as Error).message);
  }
})();
/**
 * `--bucket-params-b KEY=VALUE` (repeatable): query parameters added to the async-b node's bucket
 * URL (docs/object-store.md), e.g. `leanPut=false`: a bucket setting against the default, A/B.
 */
const BUCKET_PARAMS_B: Record<string, string> = (() => {
  try {
    return parseNodeEnv(opts['bucket-params-b'] ?? [], '--bucket-params-b');
  } catch (err) {
    return usage((err as Error).message);
  }
})();
/** What makes async-b differ from async, for the report. */
const B_SETTINGS = [describeNodeEnv(NODE_ENV_B), describeNodeEnv(Object.fromEntries(Object.entries(BUCKET_PARAMS_B).map(([k, v]) => [`bucket ${k}`, v])))].filter((d) => d !== '').join(', ');
/** `--modes async-fs,sync` runs only those (and off); default all but async-b (bench/replication-modes.ts). */
const MODES: Set<string> = (() => {
  try {
    return selectModes(opts.modes, B_SETTINGS !== '');
  } catch (err) {
    return usage((err as Error).message);
  }
})();
/** The modes with a slice in every cycle, in the order `sliceOrders` numbers them: the bound right after async (see there). */
const CYCLE_MODES: Mode[] = (['off', 'async', 'bound', 'async-fs', 'async-b', 'off-again'] as const).filter((m) => (m === 'bound' ? MODES.has('async') : MODES.has(m)));
/** Default: the fewest whole sets of `sliceOrders`' rows that make at least 10 cycles (12 for 4 modes). */
const SET = orderSetSize(CYCLE_MODES.length);
const CYCLES = wholeNumber('pnpm bench:replication', 'cycles', opts.cycles, QUICK ? 2 : SET * Math.ceil(10 / SET), 1, 100);
/** Counted seconds of a slice. */
const SLICE_S = wholeNumber('pnpm bench:replication', 'slice', opts.slice, QUICK ? 1 : 3, 1, 60);
/**
 * Cycles per set of nodes: then every node is replaced by a fresh process.
 * Two processes of the same build differ by up to ±9 % in CPU per write for
 * the whole of their life (the off-again control measured it, 2026-12-07),
 * so a ratio between two long-lived nodes carries that difference; new
 * processes every few cycles average it out.
 */
const NODE_CYCLES = wholeNumber('pnpm bench:replication', 'node-cycles', opts['node-cycles'], 2, 1, 100);
/** Seconds of load on a node before its slice is counted (async ships every 500 ms: one interval and a pass). */
const RAMP_S = 1;
const TENANTS = 8;
const CONNECTIONS = 32;
const WARMUP_S = QUICK ? 1 : 2;
/** The lag window of each replicated node. */
const WINDOW_S = QUICK ? 3 : 10;
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

/** A node's replication setting, and the mode of its slices; `bound` is a node without replication while s3rver stores objects beside it. */
type Mode = ReplicationMode | 'bound';
/** Whether a node of this mode replicates (off, off-again and the bound run without replication). */
const replicates = (m: Mode): boolean => m !== 'off' && m !== 'off-again' && m !== 'bound';
/** One `domicile serve` of the load phase. */
interface LoadNode { mode: Mode; node: DomicileServer; tenants: string[] }
/** One counted slice of load on one node. */
interface Slice {
  mode: Mode; cycle: number; s3rverCpuS: number; nodeCpuS: number; opsPerSec: number; ok: number; errors: number;
  /** This process's CPU in the window: the load generator (autocannon), and for the bound its PUTs. */
  benchCpuS: number;
  /** The whole machine's CPU in the window, all cores (undefined without /proc). */
  machine: MachineCpu | undefined;
  /** Latencies of the answers in the counted window (ms). */
  latencies: number[];
  /** Objects (and their bytes) the node stored in its bucket during the window; for the bound, those the bench stored beside it. */
  uploads: { objects: number; bytes: number };
  /** Held checkpoints during the window and the write pause they cost, summed over tenants (`/metrics`). */
  held: { count: number; pauseS: number };
  /** The node's CPU per write by thread group (µs; undefined without /proc). */
  threads: ThreadCpu | undefined;
}
/** A lag window of one replicated mode. */
interface LagWindow { mode: Mode; lagSamples: number[]; probeLags: number[] }

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : 'n/a');

const dir = mkdtempSync(join(tmpdir(), 'domicile-repl-bench-'));
// Stopped by a signal sent to this process alone (not the terminal's whole group, which the nodes also get): exit
// through 'exit', where the testkit kills the nodes it started (and s3rver sees its parent go), and leave no data.
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.once(sig, () => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(code);
  });
}
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
      DOMICILE_BUCKETS: `bench-region=${mode === 'async-fs' ? `file://${join(dir, 'fs-bucket', prefix)}` : s3.bucketUrl('bench', prefix)}${mode === 'async-b' && Object.keys(BUCKET_PARAMS_B).length > 0 ? `&${new URLSearchParams(BUCKET_PARAMS_B).toString()}` : ''}`,
      DOMICILE_REPLICATION: replicates(mode) ? 'on' : 'off',
      DOMICILE_DURABILITY: mode === 'sync' ? 'sync' : 'async',
      ...NODE_ENV,
      ...(mode === 'async-b' ? NODE_ENV_B : {}),
    },
  });
}

async function must(res: Promise<{ status: number; body: any }>, what: string): Promise<any> {
  const r = await res;
  if (r.status >= 300) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** A load node with its tenants and their table, for `NODE_CYCLES` cycles (set `set`). */
async function startLoadNode(s3: S3Server, mode: Mode, set: number): Promise<LoadNode> {
  const profile = PROFILE_NODE ? ['--cpu-prof', `--cpu-prof-dir=${join(PROFILE_NODE, `${mode}-${set}`)}`] : [];
  const node = await startNode(s3, mode, `load-${mode}-${set}`, profile);
  const tenants = Array.from({ length: TENANTS }, (_, k) => `bench-${mode}-${k}`);
  for (const t of tenants) {
    await must(node.api('POST', '/v1/tenants', { id: t, residency: 'bench' }), `create ${t}`);
    await must(node.api('POST', `/v1/tenants/${t}/query`, { sql: 'CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)' }), 'create table');
  }
  return { mode, node, tenants };
}

/** What the node's replication has done so far (`/metrics`): objects and bytes stored, held checkpoints and their pause. */
function replicationCounters(m: NodeMetrics): { objects: number; bytes: number; held: number; heldPauseS: number } {
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

/**
 * Closed-loop writes to `n` for `durationS` (autocannon, tenants in
 * rotation). `onResponse` sees each answer's status and latency as it comes.
 */
async function writeLoad(n: LoadNode, durationS: number, onResponse?: (status: number, ms: number) => void): Promise<autocannon.Result> {
  let i = 0;
  return new Promise<autocannon.Result>((resolve, reject) => {
    const inst = autocannon({
      url: n.node.url,
      connections: CONNECTIONS,
      duration: durationS,
      pipelining: 1,
      timeout: 10,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
      requests: [{
        method: 'POST',
        setupRequest: (req) => {
          const t = n.tenants[i++ % n.tenants.length]!;
          return { ...req, path: `/v1/tenants/${t}/query`, body: JSON.stringify({ sql: 'INSERT INTO kv (v) VALUES (?)', params: [`value ${i} ${'x'.repeat(80)}`] }) };
        },
      }],
    }, (err, res) => (err ? reject(err) : resolve(res)));
    if (onResponse) inst.on('response', (_c, status, _b, ms) => onResponse(status, ms));
  });
}

/** What a slice reads of the node (and of s3rver) at each end of its counted window. */
interface Reading { at: number; nodeCpu: number; s3rverCpu: number; benchCpu: number; machine: MachineCpu | undefined; threads: Map<string, number>; counters: ReturnType<typeof replicationCounters> }

async function read(s3: S3Server, n: LoadNode): Promise<Reading> {
  const at = performance.now();
  const nodeCpu = processCpuSeconds(n.node.pid());
  const s3rverCpu = processCpuSeconds(s3.pid);
  const { user, system } = process.cpuUsage();
  const machine = machineCpuSeconds();
  const m = await scrapeMetrics(n.node.url); // one scrape: the threads' CPU and the replication counters
  return { at, nodeCpu, s3rverCpu, benchCpu: (user + system) / 1e6, machine, threads: m.byLabel('domicile_thread_cpu_seconds_total', 'thread'), counters: replicationCounters(m) };
}

/**
 * One slice: load on `n` for the ramp and then `SLICE_S` counted seconds
 * (answers that arrive in the counted window, CPU and counters read at its
 * ends). `alongside` (the bound): objects stored in s3rver during the window.
 */
async function slice(s3: S3Server, n: LoadNode, mode: Mode, cycle: number, alongside?: { objects: number; bytes: number }): Promise<Slice> {
  let counting = false;
  let ok = 0;
  let errors = 0;
  const latencies: number[] = [];
  const counted = (async () => {
    await sleep(RAMP_S * 1000);
    counting = true; // from the start reading's first instant (its CPU times are read synchronously)
    const start = await read(s3, n);
    const side = alongside ? putAlongside(s3, `bound-${cycle}`, alongside, SLICE_S) : Promise.resolve(0);
    await sleep(SLICE_S * 1000 - (performance.now() - start.at));
    counting = false;
    const end = await read(s3, n);
    const sidePuts = await side;
    if (alongside && sidePuts < alongside.objects) throw new Error(`bound: ${sidePuts} of ${alongside.objects} PUTs to s3rver answered 200`);
    return { start, end };
  })();
  // The load runs on past the window's end while its closing reading is taken.
  const load = writeLoad(n, RAMP_S + SLICE_S + 1, (status, ms) => {
    if (!counting) return;
    if (status >= 200 && status < 300) { ok++; latencies.push(ms); } else errors++;
  });
  const [{ start, end }, res] = await Promise.all([counted, load]);
  const seconds = (end.at - start.at) / 1000;
  return {
    mode, cycle, ok, latencies, errors: errors + res.errors, // autocannon's: connection errors and timeouts
    opsPerSec: ok / seconds,
    nodeCpuS: end.nodeCpu - start.nodeCpu,
    s3rverCpuS: end.s3rverCpu - start.s3rverCpu,
    benchCpuS: end.benchCpu - start.benchCpu,
    machine: start.machine && end.machine ? { busy: end.machine.busy - start.machine.busy, idle: end.machine.idle - start.machine.idle } : undefined,
    threads: threadsPerAnswer(start.threads, end.threads, ok),
    uploads: alongside ?? { objects: end.counters.objects - start.counters.objects, bytes: end.counters.bytes - start.counters.bytes },
    held: { count: end.counters.held - start.counters.held, pauseS: end.counters.heldPauseS - start.counters.heldPauseS },
  };
}

/** The lag window of a replicated node: `replication.lagMs` of every tenant every 50 ms, and the answer → bucket probe, under the same load. */
async function lagWindow(n: LoadNode): Promise<LagWindow> {
  const lagSamples: number[] = [];
  const probeLags: number[] = [];
  let running = true;
  const sampler = (async () => {
    while (running) {
      for (const t of n.tenants) lagSamples.push((await n.node.api('GET', `/v1/tenants/${t}`)).body.replication.lagMs);
      await sleep(50);
    }
  })();
  const prober = (async () => {
    const t = n.tenants[0]!;
    while (running) {
      const w = await n.node.api('POST', `/v1/tenants/${t}/query`, { sql: 'INSERT INTO kv (v) VALUES (?)', params: ['probe'] });
      const acked = performance.now();
      if (w.status !== 200) { await sleep(100); continue; }
      const target = (await n.node.api('GET', `/v1/tenants/${t}`)).body.replication.lastTxid as number;
      while (running) {
        const r = (await n.node.api('GET', `/v1/tenants/${t}`)).body.replication;
        if (r.replicatedTxid !== null && r.replicatedTxid >= target) {
          probeLags.push(performance.now() - acked);
          break;
        }
        await sleep(5);
      }
      await sleep(100);
    }
  })();
  await writeLoad(n, WINDOW_S);
  running = false;
  await Promise.all([sampler, prober]);
  return { mode: n.mode, lagSamples, probeLags };
}

/** One mode's slices as one row: median throughput and ratio, CPU per write over all its counted windows. */
interface ModeSummary {
  mode: Mode; slices: Slice[]; opsPerSec: number;
  /** Median of the cycles' ratios to the off slice of the same cycle (sync: to the median off slice). */
  ratio: number; ratios: number[];
  /** All the mode's writes per second against all of off's, over the same cycles. */
  totalRatio: number;
  cpuUsPerWrite: number; threads: ThreadCpu | undefined; latencies: number[];
  /** The whole machine's CPU per write over the mode's windows (µs) and its idle share; undefined without /proc. */
  machine: MachineShare | undefined;
}

/**
 * Where the machine's CPU went per acknowledged write (µs): the node, s3rver,
 * this process (the load generator) and the rest (the kernel's own threads,
 * anything else running), and the share of the cores left idle. With little
 * idle the cores are the limit, and a ratio of throughputs is about the
 * inverse ratio of `busy`.
 */
interface MachineShare { busy: number; node: number; s3rver: number; bench: number; rest: number; idle: number }

function machineShare(slices: Slice[]): MachineShare | undefined {
  if (slices.length === 0 || slices.some((s) => s.machine === undefined)) return undefined;
  const ok = Math.max(1, sum(slices.map((s) => s.ok)));
  const us = (xs: number[]) => (sum(xs) * 1e6) / ok;
  const busy = us(slices.map((s) => s.machine!.busy));
  const node = us(slices.map((s) => s.nodeCpuS));
  const s3rver = us(slices.map((s) => s.s3rverCpuS));
  const bench = us(slices.map((s) => s.benchCpuS));
  const idleS = sum(slices.map((s) => s.machine!.idle));
  return { busy, node, s3rver, bench, rest: busy - node - s3rver - bench, idle: idleS / Math.max(1e-9, idleS + sum(slices.map((s) => s.machine!.busy))) };
}

/** `busy µs (node / s3rver / load generator / rest), idle %`. */
function machineText(m: MachineShare | undefined): string {
  return m === undefined ? 'n/a' : `${fmt(m.busy)} µs (${fmt(m.node)} / ${fmt(m.s3rver)} / ${fmt(m.bench)} / ${fmt(m.rest)}), idle ${fmt(m.idle * 100)} %`;
}

function summarize(mode: Mode, slices: Slice[], offSlices: Slice[]): ModeSummary {
  const { ratios, ratio, total } = cycleRatios(slices, offSlices);
  const ok = sum(slices.map((s) => s.ok));
  return {
    mode, slices, ratios, ratio, totalRatio: total,
    opsPerSec: median(slices.map((s) => s.opsPerSec)),
    cpuUsPerWrite: (sum(slices.map((s) => s.nodeCpuS)) * 1e6) / Math.max(1, ok),
    threads: pooledThreads(slices),
    machine: machineShare(slices),
    latencies: slices.flatMap((s) => s.latencies),
  };
}

/** Each thread group's µs per write over all the slices (weighted by their answers); undefined when a slice has none. */
function pooledThreads(slices: Slice[]): ThreadCpu | undefined {
  if (slices.length === 0 || slices.some((s) => s.threads === undefined)) return undefined;
  const ok = sum(slices.map((s) => s.ok));
  const m = (k: keyof ThreadCpu) => sum(slices.map((s) => s.threads![k] * s.ok)) / Math.max(1, ok);
  return { main: m('main'), workers: m('workers'), shipper: m('shipper'), other: m('other') };
}

/** `main / workers / shipper / other` in µs per write. */
/** The bootstrap interval of the median of a mode's per-cycle ratios (report.ts), as report text. */
function intervalText(ratios: readonly number[]): string {
  const { low, high } = bootstrapMedianInterval(ratios, seededRandom(1));
  return `95 % interval of the median ${fmt(low, 2)}–${fmt(high, 2)}×`;
}

function threadText(t: ThreadCpu | undefined): string {
  return t === undefined ? 'n/a' : `${fmt(t.main)} / ${fmt(t.workers)} / ${fmt(t.shipper)} / ${fmt(t.other)}`;
}

/** One slice's line on stdout. */
function sliceLine(s: Slice): string {
  return `${(s.cycle < CYCLES ? `${s.mode} #${s.cycle + 1}` : s.mode).padEnd(12)} ${fmt(s.opsPerSec)} writes/s  p50 ${fmt(pct(s.latencies, 50), 1)} ms  p99 ${fmt(pct(s.latencies, 99), 1)} ms  errors ${s.errors}  node CPU ${fmt((s.nodeCpuS * 1e6) / Math.max(1, s.ok))} µs/write (${threadText(s.threads)})  held checkpoints ${s.held.count} (pause mean ${s.held.count > 0 ? fmt((s.held.pauseS * 1000) / s.held.count, 1) : 'n/a'} ms)  uploads ${s.uploads.objects} (${s.uploads.objects > 0 ? fmt(s.uploads.bytes / s.uploads.objects / 1024, 1) : 'n/a'} KiB mean)  s3rver CPU ${fmt(s.s3rverCpuS, 2)} s  machine ${machineText(machineShare([s]))}`;
}

/** Fresh nodes (set `set`) for the modes of the cycles, started together, then each warmed up in turn. */
async function startLoadNodes(s3: S3Server, modes: Mode[], set: number): Promise<Map<Mode, LoadNode>> {
  const started = await Promise.allSettled(modes.map((m) => startLoadNode(s3, m, set)));
  const nodes = new Map<Mode, LoadNode>();
  for (const r of started) if (r.status === 'fulfilled') nodes.set(r.value.mode, r.value);
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stopLoadNodes(nodes);
    throw failed.reason;
  }
  for (const n of nodes.values()) await writeLoad(n, WARMUP_S);
  return nodes;
}

async function stopLoadNodes(nodes: Map<Mode, LoadNode>): Promise<void> {
  for (const n of nodes.values()) {
    if (PROFILE_NODE) await n.node.stop(); // the profiles are written on a graceful exit
    await n.node.dispose();
  }
  nodes.clear();
}

/**
 * The load phase: the cycles of slices on sets of fresh nodes (a new set
 * every `NODE_CYCLES` cycles), then sync once and the lag windows; its
 * markdown lines.
 */
async function loadPhase(s3: S3Server): Promise<string[]> {
  // A cycle: one slice per mode, in an order balanced for what ran just before (sliceOrders). The bound stores
  // what async uploaded in its latest slice, and the first cycle runs async before it.
  const orders = sliceOrders(CYCLE_MODES.length, CYCLES).map((o) => o.map((i) => CYCLE_MODES[i]!));
  // A node per mode of the cycle, the bound's too: every node takes the same load, one slice per cycle.
  const nodeModes = CYCLE_MODES;
  const slices: Slice[] = [];
  let nodes = new Map<Mode, LoadNode>();
  try {
    let lastAsync: { objects: number; bytes: number } | undefined;
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      if (cycle % NODE_CYCLES === 0) {
        await stopLoadNodes(nodes);
        nodes = await startLoadNodes(s3, nodeModes, cycle / NODE_CYCLES);
      }
      for (const mode of orders[cycle]!) {
        const node = nodes.get(mode)!;
        const s = await slice(s3, node, mode, cycle, mode === 'bound' ? lastAsync ?? { objects: 0, bytes: 0 } : undefined);
        if (mode === 'async') lastAsync = s.uploads;
        slices.push(s);
        console.log(sliceLine(s));
      }
      const off = slices.find((s) => s.cycle === cycle && s.mode === 'off')!;
      console.log(`cycle ${cycle + 1}: ${slices.filter((s) => s.cycle === cycle && s.mode !== 'off').map((s) => `${s.mode} ${fmt(s.opsPerSec / off.opsPerSec, 2)}×`).join('  ')}`);
    }
    // Sync: slow and without a goal; a node of its own after the cycles, one slice against the median off slice.
    if (MODES.has('sync')) {
      const sync = await startLoadNodes(s3, ['sync'], 0);
      for (const [m, n] of sync) nodes.set(m, n);
      const s = await slice(s3, nodes.get('sync')!, 'sync', CYCLES, undefined);
      slices.push(s);
      console.log(sliceLine(s));
    }
    const lags = new Map<Mode, LagWindow>();
    for (const n of nodes.values()) {
      if (!replicates(n.mode)) continue;
      const w = await lagWindow(n);
      lags.set(n.mode, w);
      console.log(`lag ${n.mode}: lagMs p50/p99 ${fmt(pct(w.lagSamples, 50))}/${fmt(pct(w.lagSamples, 99))} ms (${w.lagSamples.length} samples)  probe answer→bucket p50/p99 ${fmt(pct(w.probeLags, 50), 1)}/${fmt(pct(w.probeLags, 99), 1)} ms (${w.probeLags.length})`);
    }
    return loadReport(slices, lags);
  } finally {
    await stopLoadNodes(nodes);
  }
}

function loadReport(slices: Slice[], lags: Map<Mode, LagWindow>): string[] {
  const of = (m: Mode) => slices.filter((s) => s.mode === m);
  const off = of('off');
  const rows = (['off', 'async', 'async-b', 'sync', 'async-fs', 'bound', 'off-again'] as const).filter((m) => of(m).length > 0).map((m) => summarize(m, of(m), off));
  const row = (m: Mode) => rows.find((r) => r.mode === m);
  const lagText = (m: Mode) => {
    const w = lags.get(m); // replicated modes only
    return w ? [`${fmt(pct(w.lagSamples, 50))} / ${fmt(pct(w.lagSamples, 99))} ms (${w.lagSamples.length})`, `${fmt(pct(w.probeLags, 50), 1)} / ${fmt(pct(w.probeLags, 99), 1)} ms (${w.probeLags.length})`] : ['n/a', 'n/a'];
  };
  const lines = [
    `Load: ${TENANTS} tenants, ${CONNECTIONS} connections, autocannon closed loop in the bench process, one INSERT of ~100 bytes per request, tenants in rotation. One node per replication setting, started together and each warmed up for ${WARMUP_S} s, replaced by a fresh set every ${NODE_CYCLES} cycle(s); ${CYCLES} cycle(s) of one slice per mode (${RAMP_S} s ramp, then ${SLICE_S} s counted) in orders balanced for the slice before (every mode right after every other one equally often over each ${SET} cycles, none twice in a row; the first cycle starts off → async); sync once after the cycles, on a node of its own (${SLICE_S} s counted). Bound: a node without replication of its own while the bench stores in s3rver, beside the load, as many objects of the same mean size as the async node uploaded in its latest slice (plain HTTP PUTs, evenly paced, ≤ 8 in flight): the node pays nothing for replication, s3rver takes its share of the cores. writes/s: the median of a mode's slices; ratio: the median of its cycles' ratios to the off slice of the same cycle (sync: to the median off slice); total: all its slices' writes against all of off's; interval: where 95 % of the medians of its cycles' ratios fall when the cycles are resampled with replacement (2,000 resamples, seeded), i.e. how far another run of as many cycles could land. Node CPU: user + system time of the node process (every thread) over the mode's counted windows, per acknowledged write; by thread: the same from the node's \`domicile_thread_cpu_seconds_total\` (event loop, SQLite workers, replication shipper, the rest: GC, the libuv pool's fsyncs and compression). Latencies: the answers of the counted windows, pooled. Lag, in a ${WINDOW_S} s window of its own per replicated node after the cycles, under the same load: \`replication.lagMs\` of every tenant sampled every 50 ms; probe: one write at a time to the first tenant, from its answer until \`replicatedTxid\` reaches the txid seen right after (polled every 5 ms). Machine CPU: the busy time of all the cores (\`/proc/stat\`) over the mode's counted windows per acknowledged write, split into the node, s3rver, this process (the load generator; for the bound also its PUTs) and the rest, and the share of the cores' time left idle. Held checkpoints and uploads (per-slice lines): the window's increase of the node's \`domicile_replication_checkpoints_total{how="held"}\`, of the sum of \`domicile_replication_checkpoint_pause_seconds\` and of the uploaded objects, over all tenants.`,
    '',
    '| replication | writes/s (median of slices) | ratio vs off (cycles) | total | node CPU per write | by thread: main / workers / shipper / other | p50 | p99 | errors | lagMs p50 / p99 (samples) | probe answer→bucket p50 / p99 | held checkpoints per slice (mean pause) | uploads per slice | s3rver CPU per slice | machine CPU per write: node / s3rver / load generator / rest |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => {
      const [lag, probe] = lagText(r.mode);
      const held = sum(r.slices.map((s) => s.held.count));
      return `| ${r.mode} | ${fmt(r.opsPerSec)} | **${fmt(r.ratio, 2)}×** (${r.ratios.map((x) => fmt(x, 2)).join(', ')}) | ${fmt(r.totalRatio, 3)}× | ${fmt(r.cpuUsPerWrite)} µs | ${threadText(r.threads)} µs | ${fmt(pct(r.latencies, 50), 1)} ms | ${fmt(pct(r.latencies, 99), 1)} ms | ${sum(r.slices.map((s) => s.errors))} | ${lag} | ${probe} | ${fmt(held / r.slices.length, 1)} (${held > 0 ? fmt((sum(r.slices.map((s) => s.held.pauseS)) * 1000) / held, 1) : 'n/a'} ms) | ${fmt(median(r.slices.map((s) => s.uploads.objects)))} | ${fmt(median(r.slices.map((s) => s.s3rverCpuS)), 2)} s | ${machineText(r.machine)} |`;
    }),
    '',
  ];
  const a = row('async');
  const [sync, fs, offRow, bound, again, b] = [row('sync'), row('async-fs'), row('off')!, row('bound'), row('off-again'), row('async-b')];
  const ab = a && b ? cycleRatios(a.slices, b.slices) : undefined;
  const aw = lags.get('async');
  const aLag = aw ? Math.max(pct(aw.lagSamples, 99), pct(aw.probeLags, 99)) : NaN;
  const goals = [
    ...(a ? [`async ≥ 0.9× off: **${a.ratio >= 0.9 ? 'met' : 'not met'}** (${fmt(a.ratio, 3)}×; total ${fmt(a.totalRatio, 3)}×; ${intervalText(a.ratios)}) · async lag p99 ≤ 1 s: **${aLag <= 1000 ? 'met' : 'not met'}** (${fmt(aLag)} ms, the larger of the two measures)`] : []),
    ...(sync ? [`sync: ${fmt(sync.ratio, 2)}× off (no goal)`] : []),
    ...(fs ? [`async to a file:// bucket instead of s3rver (diagnostic row): ${fmt(fs.ratio, 2)}× off`] : []),
    ...(b && ab ? [`async-b (async with ${B_SETTINGS}): ${fmt(b.ratio, 3)}× off (total ${fmt(b.totalRatio, 3)}×); async against async-b: ${fmt(ab.ratio, 3)}× (median of the cycles; total ${fmt(ab.total, 3)}×)`] : []),
    ...(bound ? [`bound (off, s3rver storing the async node's objects beside it): ${fmt(bound.ratio, 2)}× off — the most async can reach while s3rver shares these cores`] : []),
    ...(again ? [`off-again (a second node without replication: the method's noise): ${fmt(again.ratio, 3)}× off (total ${fmt(again.totalRatio, 3)}×; ${intervalText(again.ratios)})`] : []),
  ];
  const cpu = [a, b, fs].filter((r): r is ModeSummary => r !== undefined).map((r) => `${r.mode} ${r.cpuUsPerWrite >= offRow.cpuUsPerWrite ? '+' : '−'}${fmt(Math.abs(r.cpuUsPerWrite - offRow.cpuUsPerWrite))} µs`);
  lines.push(`Goals: ${goals.join(' · ')}.${cpu.length > 0 ? ` Replication's node CPU per write over off: ${cpu.join(', ')}.` : ''}`, '');
  return lines;
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
  const machine = machineLine();
  console.log(`machine: ${machine}`);
  const s3 = await startS3Server({ buckets: ['bench'] });
  const envNote = (Object.keys(NODE_ENV).length > 0 ? ` Node environment: ${describeNodeEnv(NODE_ENV)}.` : '')
    + (B_SETTINGS !== '' ? ` The async-b node also: ${B_SETTINGS}.` : '');
  const report: string[] = [`Machine: ${machine}. s3rver 3.7.1 child process on loopback (one bucket), \`domicile serve\` child process with 2 SQLite workers, log level warn.${envNote}`, ''];
  try {
    if (!ONLY || ONLY === 'load') report.push(...(await loadPhase(s3)));
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
