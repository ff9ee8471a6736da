/**
 * The same-run comparison harness behind `pnpm bench`: every scenario of
 * loadtest/scenarios.json against a real `domicile serve` and, in the same run
 * on the same machine, against three baselines: the HTTP ceiling (bare
 * fastify), the storage ceiling (raw better-sqlite3) and the peer (fastify +
 * pg on a throwaway Postgres). Targets of a scenario run one after another, so
 * each gets the whole machine; ratios are what to compare across machines.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort, startDomicile, type DomicileServer } from '@domicile/testkit';
import { drive, type TargetResult } from './load.ts';
import { RawShards } from './raw-sqlite.ts';
import { startPostgresCluster, type PostgresCluster } from './postgres-cluster.ts';
import { describeNodeEnv } from './node-env.ts';
import { scrapeMetrics } from './node-metrics.ts';
import { nodeThreadCpu, processCpuSeconds, threadsPerAnswer, type ThreadCpu } from './process-cpu.ts';
import { loadScenarioFile, tenantIds, type Scenario, type ScenarioFile } from './scenarios.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BASELINE_SERVER = fileURLToPath(new URL('./baseline-server.ts', import.meta.url));
/** The results file a full run appends to. */
export { RESULTS_FILE } from './report.ts';

/** The things measured, in the order they run within a scenario. */
export const TARGETS = ['fastify-ceiling', 'fastify-sqlite', 'raw-sqlite', 'domicile', 'postgres-peer'] as const;
/** One of {@link TARGETS}. */
export type Target = (typeof TARGETS)[number];

const TARGET_LABEL: Record<Target, string> = {
  'fastify-ceiling': 'fastify ceiling (HTTP + JSON, no storage)',
  'fastify-sqlite': 'bound: fastify + SQLite on the event loop (no replication, guard, auth or threads)',
  'raw-sqlite': 'raw better-sqlite3 (in-process, no HTTP)',
  domicile: '**Domicile** (`domicile serve`)',
  'postgres-peer': 'Postgres peer (fastify + pg, one table)',
};

/** Postgres matched to SQLite's WAL + synchronous=NORMAL: commits do not wait for the WAL flush; fsync stays on. */
const PG_SETTINGS = { synchronous_commit: 'off', shared_buffers: '128MB', max_connections: '40' };
/** Domicile's pool size in the run (as `startDomicile` sets it). */
const DOMICILE_WORKERS = 2;
/** Concurrent admin requests while creating tenants. */
const SETUP_CONCURRENCY = 16;

/** What to run. */
export interface BenchOptions {
  /** Scenario names; default all. */
  scenarios?: string[];
  /** Measured seconds per target per scenario (overrides the file). */
  durationSeconds?: number;
  /** CI smoke run: the file's `tiny` tenants, connections and duration, no warm-up. */
  tiny?: boolean;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
  /**
   * Also measure Domicile with `DOMICILE_DURABILITY=sync` (a second node,
   * same data shape) right after the async one, to state what sync costs.
   */
  sync?: boolean;
  /** Extra environment for the Domicile node(s), e.g. `{DOMICILE_SHIP_INTERVAL: '1s'}` to compare a setting; named in the report. */
  nodeEnv?: Record<string, string>;
  /** Write a V8 CPU profile of every thread of the (async) Domicile node into this directory, on its graceful stop. */
  profileNodeDir?: string;
  /**
   * Domicile requests carry each tenant's own tenant token (a JWT issued in
   * setup) instead of the admin token, as a client per tenant would: the
   * node then verifies a token per request (or finds it among the verified).
   */
  tenantTokens?: boolean;
}

/** One scenario as run, with every target's result. */
export interface ScenarioReport {
  readonly scenario: Scenario;
  readonly tenants: number;
  readonly connections: number;
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  readonly results: Readonly<Record<Target, TargetResult>>;
  /** Domicile with sync durability (`sync: true` runs only). */
  readonly domicileSync?: TargetResult;
  readonly ratios: {
    readonly domicileOverCeiling: number; readonly domicileOverPostgres: number; readonly domicileOverRaw: number;
    /** The fastify + SQLite bound against the ceiling and the peer: the most any HTTP design with a SQLite file per tenant reaches here. */
    readonly boundOverCeiling: number; readonly boundOverPostgres: number; readonly domicileOverBound: number;
  };
  /**
   * Domicile's CPU per answer by thread in its measured window, µs (from
   * `domicile_thread_cpu_seconds_total`): the event loop, the SQLite workers
   * together, the replication shipper, and the rest of the process.
   */
  readonly domicileThreads?: ThreadCpu;
  /** Domicile's replication during its measured window (from /metrics): what shipping cost and whether it kept up. */
  readonly replication?: { readonly segmentsPerSec: number; readonly writesPerSegment: number; readonly maxLagSecondsAtEnd: number };
  /** Shard handles opened and closed by the LRU cache per second of Domicile's window (handle churn). */
  readonly domicileHandles?: { readonly opensPerSec: number; readonly evictionsPerSec: number; readonly open: number };
  /** Domicile against the scenario's thresholds. */
  readonly thresholds: { readonly errorRate: number; readonly passed: boolean };
}

/** A whole run. */
export interface BenchReport {
  readonly date: string;
  readonly machine: { readonly cpu: string; readonly cores: number; readonly node: string; readonly os: string; readonly memGiB: number; readonly loadavg1: number };
  readonly method: readonly string[];
  readonly setup: { readonly domicileTenantsPerSec: number; readonly tenants: number };
  readonly scenarios: readonly ScenarioReport[];
}

interface Child { stop(): Promise<void> }

/** Starts a baseline server process and waits for its `listening` line. */
async function startBaseline(mode: 'ceiling' | 'postgres' | 'sqlite', ...extra: string[]): Promise<Child & { url: string; pid: number | undefined }> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', BASELINE_SERVER, mode, String(port), ...extra], {
    cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  let out = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { kill(); reject(new Error(`baseline ${mode} did not start within 20 s:\n${out}`)); }, 20_000);
    child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening\n')) { clearTimeout(timer); resolve(); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`baseline ${mode} exited with ${code}:\n${out}`)); });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    async stop() {
      process.off('exit', kill);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(kill, 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Objects uploaded so far (all kinds, and segments alone) and the largest replication lag of any region (seconds), from /metrics. */
async function replicationCounters(server: DomicileServer): Promise<{ objects: number; segments: number; maxLagSeconds: number }> {
  const m = await scrapeMetrics(server.url);
  return {
    objects: m.sum('domicile_replication_uploaded_objects_total'),
    segments: m.sum('domicile_replication_uploaded_objects_total', { kind: 'segment' }),
    maxLagSeconds: m.max('domicile_replication_lag_seconds'),
  };
}

/** Shard handles opened and evicted so far, and open now (`domicile_shard_opens_total`, `…_evictions_total`, `domicile_open_shards`). */
async function handleCounters(server: DomicileServer): Promise<{ opens: number; evictions: number; open: number }> {
  const m = await scrapeMetrics(server.url);
  return { opens: m.value('domicile_shard_opens_total'), evictions: m.value('domicile_shard_evictions_total'), open: m.value('domicile_open_shards') };
}

/**
 * Waits until the node's replication has caught up after setup (every new
 * tenant starts a generation: checkpoint, snapshot, upload), so the measured
 * window is the steady state: the upload counter stops moving for 1.5 s.
 */
async function replicationQuiet(server: DomicileServer, limitMs = 120_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  let last = -1;
  for (;;) {
    const n = (await replicationCounters(server)).objects;
    if (n === last || Date.now() > deadline) return;
    last = n;
    await new Promise((r) => setTimeout(r, 1500));
  }
}

/**
 * `sync`: writes back the dirty pages the previous target left (the raw and
 * bound targets write hundreds of MB of WAL that nobody fsyncs), so the next
 * target's fsyncs — Domicile's shipper makes two per segment — do not wait
 * for them to reach the disk.
 */
function flushDirtyPages(): void {
  try {
    execFileSync('sync', { stdio: 'ignore', timeout: 60_000 });
  } catch {
    // No sync(1) here: the targets run as before.
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (i < items.length) await fn(items[i++]!);
  }));
}

async function setupDomicile(server: DomicileServer, file: ScenarioFile, tenants: readonly string[]): Promise<number> {
  const t0 = performance.now();
  await eachLimit(tenants, SETUP_CONCURRENCY, async (id) => {
    const created = await server.api('POST', '/v1/tenants', { id, residency: file.residency });
    if (created.status !== 201) throw new Error(`creating tenant ${id}: ${created.status} ${JSON.stringify(created.body)}`);
    const schema = await server.api('POST', `/v1/tenants/${id}/batch`, { statements: file.schema.map((sql) => ({ sql })) });
    if (schema.status !== 200) throw new Error(`schema of tenant ${id}: ${schema.status} ${JSON.stringify(schema.body)}`);
  });
  return tenants.length / ((performance.now() - t0) / 1000);
}

/** A write-scope tenant token for every tenant, issued through the admin API. */
async function issueTenantTokens(server: DomicileServer, tenants: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  await eachLimit(tenants, SETUP_CONCURRENCY, async (id) => {
    const r = await server.api('POST', `/v1/tenants/${id}/tokens`, { scope: 'write', ttlSeconds: 86_400 });
    if (r.status !== 201) throw new Error(`token of tenant ${id}: ${r.status} ${JSON.stringify(r.body)}`);
    out.set(id, (r.body as { token: string }).token);
  });
  return out;
}

async function setupPostgres(url: string, file: ScenarioFile, tenants: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const sql of file.postgresSchema) await client.query(sql);
    // The seed row of each tenant, as the SQLite schema's INSERT gives every shard one.
    await client.query("INSERT INTO events (tenant, kind, body, at) SELECT t, 'seed', 'seed row', 0 FROM unnest($1::text[]) AS t", [tenants]);
    await client.query('ANALYZE events');
  } finally {
    await client.end();
  }
}

function machine(): BenchReport['machine'] {
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model.trim() ?? 'unknown', cores: cpu.length, node: process.version,
    os: `${platform()} ${release()}`, memGiB: Math.round(totalmem() / 2 ** 30), loadavg1: Number(loadavg()[0]!.toFixed(2)),
  };
}

/** Runs the benchmark and returns the report (prints nothing but progress; never writes RESULTS.md). */
export async function runBench(opts: BenchOptions = {}): Promise<BenchReport> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const file = loadScenarioFile();
  const names = opts.scenarios?.length ? opts.scenarios : Object.keys(file.scenarios);
  for (const n of names) if (!file.scenarios[n]) throw new Error(`unknown scenario ${JSON.stringify(n)} (known: ${Object.keys(file.scenarios).join(', ')})`);
  if (opts.durationSeconds !== undefined && !(opts.durationSeconds > 0 && opts.durationSeconds <= 600)) throw new Error('durationSeconds must be in (0, 600]');
  const plans = names.map((n) => {
    const s = file.scenarios[n]!;
    const durationSeconds = opts.durationSeconds ?? (opts.tiny ? file.tiny.durationSeconds : s.durationSeconds);
    return {
      scenario: s,
      tenants: opts.tiny ? Math.min(s.tenants, file.tiny.tenants) : s.tenants,
      connections: opts.tiny ? Math.min(s.connections, file.tiny.connections) : s.connections,
      durationSeconds,
      warmupSeconds: opts.tiny ? 0 : Math.min(2, Math.floor(durationSeconds / 5)),
    };
  });
  const all = tenantIds(file, Math.max(...plans.map((p) => p.tenants)));
  const date = new Date().toISOString();
  const mach = machine();

  const scratch = mkdtempSync(path.join(tmpdir(), 'domicile-bench-'));
  let domicile: DomicileServer | undefined;
  let domicileSync: DomicileServer | undefined;
  let postgres: PostgresCluster | undefined;
  let raw: RawShards | undefined;
  const children: Child[] = [];
  try {
    log(`starting: domicile serve, Postgres, baseline servers (${all.length} tenants)`);
    [domicile, postgres] = await Promise.all([
      startDomicile({
        env: { DOMICILE_LOG_LEVEL: 'warn', DOMICILE_WORKERS: String(DOMICILE_WORKERS), ...opts.nodeEnv },
        dataDir: path.join(scratch, 'domicile'),
        ...(opts.profileNodeDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${opts.profileNodeDir}`] } : {}),
      }),
      startPostgresCluster(PG_SETTINGS),
    ]);
    const ceiling = await startBaseline('ceiling');
    children.push(ceiling);
    const peer = await startBaseline('postgres', postgres.url);
    children.push(peer);
    const bound = await startBaseline('sqlite', path.join(scratch, 'bound'), String(all.length));
    children.push(bound);
    const domicileTenantsPerSec = await setupDomicile(domicile, file, all);
    const domicileTokens = opts.tenantTokens ? await issueTenantTokens(domicile, all) : undefined;
    if (opts.sync) {
      domicileSync = await startDomicile({
        env: { DOMICILE_LOG_LEVEL: 'warn', DOMICILE_WORKERS: String(DOMICILE_WORKERS), ...opts.nodeEnv, DOMICILE_DURABILITY: 'sync' },
        dataDir: path.join(scratch, 'domicile-sync'),
      });
      await setupDomicile(domicileSync, file, all);
    }
    const domicileSyncTokens = opts.tenantTokens && domicileSync ? await issueTenantTokens(domicileSync, all) : undefined;
    await replicationQuiet(domicile);
    if (domicileSync) await replicationQuiet(domicileSync);
    await setupPostgres(postgres.url, file, all);
    raw = new RawShards(file, path.join(scratch, 'raw'));
    raw.open(all);
    log(`setup done: ${all.length} Domicile tenants at ${domicileTenantsPerSec.toFixed(0)}/s`);

    const scenarios: ScenarioReport[] = [];
    for (const plan of plans) {
      const tenants = all.slice(0, plan.tenants);
      let replication: ScenarioReport['replication'];
      let domicileThreads: ScenarioReport['domicileThreads'];
      let domicileHandles: ScenarioReport['domicileHandles'];
      /** One HTTP target; `pid`: the serving process, whose CPU per answer is measured; `tokens`: a token per tenant. */
      const http = async (baseUrl: string, token: string, pid: number | undefined, node?: DomicileServer, tokens?: Map<string, string>): Promise<TargetResult> => {
        const load = {
          baseUrl, token, file, mix: plan.scenario.mix, tenants, connections: plan.connections,
          ...(tokens ? { tokenFor: (tenant: string) => tokens.get(tenant)! } : {}),
        };
        if (plan.warmupSeconds > 0) await drive({ ...load, durationSeconds: plan.warmupSeconds });
        const before = node ? await replicationCounters(node) : undefined;
        const threads0 = node ? await nodeThreadCpu(node.url) : undefined;
        const handles0 = node ? await handleCounters(node) : undefined;
        const cpu0 = processCpuSeconds(pid);
        const measured = await drive({ ...load, durationSeconds: plan.durationSeconds });
        const cpu = processCpuSeconds(pid) - cpu0;
        if (node && threads0) domicileThreads = threadsPerAnswer(threads0, await nodeThreadCpu(node.url), measured.ok);
        const result = pid !== undefined && cpu > 0 && measured.ok > 0 ? { ...measured, cpuUsPerOp: (cpu * 1e6) / measured.ok } : measured;
        if (node && handles0) {
          const h = await handleCounters(node);
          domicileHandles = { opensPerSec: (h.opens - handles0.opens) / measured.durationSeconds, evictionsPerSec: (h.evictions - handles0.evictions) / measured.durationSeconds, open: h.open };
        }
        if (node && before) {
          const after = await replicationCounters(node);
          const segments = after.segments - before.segments;
          const writes = result.ok * plan.scenario.mix.write;
          replication = { segmentsPerSec: segments / result.durationSeconds, writesPerSegment: segments > 0 ? writes / segments : NaN, maxLagSecondsAtEnd: after.maxLagSeconds };
        }
        return result;
      };
      const results = {} as Record<Target, TargetResult>;
      for (const target of TARGETS) {
        log(`${plan.scenario.name}: ${target} (${plan.durationSeconds} s)`);
        flushDirtyPages();
        switch (target) {
          case 'fastify-ceiling': results[target] = await http(ceiling.url, 'bench-token', ceiling.pid); break;
          case 'fastify-sqlite': results[target] = await http(bound.url, 'bench-token', bound.pid); break;
          case 'domicile': results[target] = await http(domicile.url, domicile.adminToken, domicile.pid(), domicile, domicileTokens); break;
          // (Its CPU would leave out the Postgres server's: not measured.)
          case 'postgres-peer': results[target] = await http(peer.url, 'bench-token', undefined); break;
          case 'raw-sqlite':
            if (plan.warmupSeconds > 0) raw.run(plan.scenario.mix, tenants, plan.warmupSeconds);
            results[target] = raw.run(plan.scenario.mix, tenants, plan.durationSeconds);
            break;
        }
      }
      let syncResult: TargetResult | undefined;
      if (domicileSync) {
        log(`${plan.scenario.name}: domicile with sync durability (${plan.durationSeconds} s)`);
        syncResult = await http(domicileSync.url, domicileSync.adminToken, domicileSync.pid(), undefined, domicileSyncTokens);
      }
      const d = results.domicile;
      const errorRate = d.errors / Math.max(1, d.ok + d.errors);
      scenarios.push({
        ...plan,
        results,
        ...(syncResult ? { domicileSync: syncResult } : {}),
        ...(replication ? { replication } : {}),
        ...(domicileThreads ? { domicileThreads } : {}),
        ...(domicileHandles ? { domicileHandles } : {}),
        ratios: {
          domicileOverCeiling: d.opsPerSec / results['fastify-ceiling'].opsPerSec,
          domicileOverPostgres: d.opsPerSec / results['postgres-peer'].opsPerSec,
          domicileOverRaw: d.opsPerSec / results['raw-sqlite'].opsPerSec,
          boundOverCeiling: results['fastify-sqlite'].opsPerSec / results['fastify-ceiling'].opsPerSec,
          boundOverPostgres: results['fastify-sqlite'].opsPerSec / results['postgres-peer'].opsPerSec,
          domicileOverBound: d.opsPerSec / results['fastify-sqlite'].opsPerSec,
        },
        thresholds: { errorRate, passed: errorRate <= plan.scenario.thresholds.maxErrorRate && d.p99Ms < plan.scenario.thresholds.p99Ms },
      });
    }
    const method = [
      `Closed loop: autocannon 8 in the harness process, one scenario at a time, its targets one after another (${TARGETS.join(' → ')}); ` +
        (opts.tiny ? 'no warm-up (--tiny).' : 'each measured window follows a warm-up of the same load (≤ 2 s).') +
        ' Before each target, `sync` writes back the dirty pages the one before left.',
      'Requests: POST /v1/tenants/:id/query with the scenario statement and params (loadtest/scenarios.json), tenant uniformly at random, writes spread evenly by a counter; ops/s counts 2xx answers only.',
      `Domicile: \`domicile serve\` child process, ${DOMICILE_WORKERS} SQLite workers, statement guard on, ${opts.tenantTokens ? 'each request with its tenant\'s own tenant token (--tenant-tokens)' : 'admin token'}, DOMICILE_LOG_LEVEL=warn, replication on with durability async (the defaults) to the region's default filesystem bucket under the data dir; measured after the setup's generation uploads went quiet.` +
        (opts.sync ? ' Sync: a second node with DOMICILE_DURABILITY=sync (same setup), measured right after the async one.' : '') +
        (opts.nodeEnv && Object.keys(opts.nodeEnv).length > 0 ? ` Node environment for this run: ${describeNodeEnv(opts.nodeEnv)} (not the defaults).` : ''),
      'fastify ceiling: a child process with the same route and body schema that parses the JSON and answers a /query-shaped result without storage.',
      'bound (fastify + SQLite): a child process with the same route running the statement with better-sqlite3 on its event loop, one file per tenant (created and seeded like Domicile\'s before the run), the shards\' pragmas, statements prepared once; no replication, statement guard, token check, directory or worker threads — the most any design that answers over HTTP from one SQLite file per tenant can do on this machine.',
      `Postgres peer: a child process, fastify + pg (pool of 16, named prepared statements) on one table keyed by (tenant, id), Postgres ${postgres.version} started by the harness (${Object.entries(PG_SETTINGS).map(([k, v]) => `${k}=${v}`).join(', ')}, fsync=on).`,
      'raw better-sqlite3: the harness process, one thread, one file per tenant, WAL, synchronous=NORMAL and the shard cache/checkpoint pragmas, statements prepared once; no HTTP.',
    ];
    return { date, machine: mach, method, setup: { domicileTenantsPerSec, tenants: all.length }, scenarios };
  } finally {
    raw?.close();
    await Promise.allSettled([...children.map((c) => c.stop()), domicile?.stop(), domicileSync?.stop(), postgres?.stop()]);
    rmSync(scratch, { recursive: true, force: true });
  }
}

const n0 = (x: number) => Math.round(x).toLocaleString('en-US');
const ms = (x: number) => (x >= 10 ? `${x.toFixed(0)} ms` : x >= 1 ? `${x.toFixed(1)} ms` : `${Math.round(x * 1000)} µs`);
const ratio = (x: number) => `${x.toFixed(2)}×`;

/** The report as Markdown (what the CLI prints and RESULTS.md keeps). */
export function formatReport(r: BenchReport, command: string): string {
  const m = r.machine;
  const lines = [
    `## Data plane: Domicile vs the HTTP ceiling, raw SQLite and Postgres (\`pnpm bench\`), ${r.date.slice(0, 10)}`,
    '',
    `Command: \`${command}\`, ${r.date}.`,
    `Machine: ${m.cpu} × ${m.cores} cores, ${m.memGiB} GiB, Node ${m.node}, ${m.os}; load average ${m.loadavg1} at start.`,
    '',
    'Method:',
    ...r.method.map((x) => `- ${x}`),
    `- Setup (not measured as load): ${r.setup.tenants} tenants created through the admin API at ${n0(r.setup.domicileTenantsPerSec)} tenants/s (create + schema batch, ${SETUP_CONCURRENCY} in flight).`,
    '',
  ];
  for (const s of r.scenarios) {
    const mix = s.scenario.mix.read === 0 ? '100% writes' : `${Math.round(s.scenario.mix.read * 100)}% reads / ${Math.round(s.scenario.mix.write * 100)}% writes`;
    lines.push(
      `### ${s.scenario.name}: ${s.tenants} tenant${s.tenants === 1 ? '' : 's'}, ${s.connections} connections, ${s.durationSeconds} s per target, ${mix}`,
      '',
      '| target | ops/s | p50 | p99 | ok | errors |',
      '|---|---|---|---|---|---|',
      ...TARGETS.map((t) => {
        const x = s.results[t];
        const conc = t === 'raw-sqlite' ? ' (1 at a time)' : '';
        return `| ${TARGET_LABEL[t]} | ${n0(x.opsPerSec)} | ${ms(x.p50Ms)}${conc} | ${ms(x.p99Ms)} | ${n0(x.ok)} | ${n0(x.errors)} |`;
      }),
      ...(s.domicileSync
        ? [`| Domicile, sync durability | ${n0(s.domicileSync.opsPerSec)} | ${ms(s.domicileSync.p50Ms)} | ${ms(s.domicileSync.p99Ms)} | ${n0(s.domicileSync.ok)} | ${n0(s.domicileSync.errors)} |`]
        : []),
      '',
      `Ratios: Domicile / fastify ceiling **${ratio(s.ratios.domicileOverCeiling)}** · Domicile / Postgres peer **${ratio(s.ratios.domicileOverPostgres)}** · Domicile / raw better-sqlite3 ${ratio(s.ratios.domicileOverRaw)}. ` +
        (s.domicileSync ? `Sync / async durability ${ratio(s.domicileSync.opsPerSec / s.results.domicile.opsPerSec)}. ` : '') +
        `The bound (fastify + SQLite on the event loop): ${ratio(s.ratios.boundOverCeiling)} the ceiling, ${ratio(s.ratios.boundOverPostgres)} the Postgres peer; Domicile ${ratio(s.ratios.domicileOverBound)} the bound. ` +
        `Thresholds (Domicile: error rate ≤ ${s.scenario.thresholds.maxErrorRate}, p99 < ${s.scenario.thresholds.p99Ms} ms): ${s.thresholds.passed ? 'pass' : '**missed**'}.`,
      ...(cpuLine(s) ? ['', cpuLine(s)!] : []),
      ...(s.replication && s.replication.segmentsPerSec > 0
        ? ['', `Domicile's replication in its window: ${n0(s.replication.segmentsPerSec)} segments uploaded/s, ${s.replication.writesPerSegment.toFixed(1)} writes per segment, largest lag at the end ${s.replication.maxLagSecondsAtEnd.toFixed(2)} s.`]
        : []),
      ...(s.domicileHandles
        ? ['', `Domicile's shard handles in its window: ${n0(s.domicileHandles.opensPerSec)} opened/s, ${n0(s.domicileHandles.evictionsPerSec)} evicted/s by the LRU cache, ${n0(s.domicileHandles.open)} open at the end.`]
        : []),
      '',
    );
  }
  return lines.join('\n');
}


/** The CPU-per-answer sentence of a scenario (steadier than ops/s on a noisy machine), or undefined when not measured. */
function cpuLine(s: ScenarioReport): string | undefined {
  const d = s.results.domicile.cpuUsPerOp;
  const c = s.results['fastify-ceiling'].cpuUsPerOp;
  const b = s.results['fastify-sqlite'].cpuUsPerOp;
  if (d === undefined) return undefined;
  const us = (x: number) => `${n0(x)} µs`;
  return `Server CPU per answer (the serving process, every thread, user + system): Domicile ${us(d)}` +
    (c === undefined ? '' : ` · fastify ceiling ${us(c)} (Domicile ${ratio(d / c)} the ceiling's)`) +
    (b === undefined ? '' : ` · the fastify + SQLite bound ${us(b)}`) +
    (s.domicileSync?.cpuUsPerOp === undefined ? '' : ` · Domicile, sync durability ${us(s.domicileSync.cpuUsPerOp)}`) +
    '; the Postgres peer is not measured (its server\'s CPU is in other processes).' +
    (s.domicileThreads === undefined ? '' : ` Domicile by thread (\`domicile_thread_cpu_seconds_total\`): event loop ${us(s.domicileThreads.main)} · SQLite workers ${us(s.domicileThreads.workers)} · replication shipper ${us(s.domicileThreads.shipper)} · other (V8 garbage collection and compiler threads, libuv pool: fsync, compression) ${us(s.domicileThreads.other)}.`);
}
