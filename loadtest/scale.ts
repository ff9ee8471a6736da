/**
 * `pnpm bench:scale`: many tenants on one node (issue 6, "Scale"). Creates
 * N tenants (default 100,000) through the HTTP API on one `domicile serve`
 * with a bounded handle cache (DOMICILE_MAX_OPEN_SHARDS, default here 2000)
 * and reports, from /proc of the server process:
 *
 * - RSS (current and peak, VmHWM) while creating and at the end;
 * - open file descriptors (peak), against the bound the cache implies;
 * - creation rate per slice of tenants (does the embedded directory slow down
 *   as it grows?) and GET /v1/tenants/:id latency at the end;
 * - cold open: the first query of a tenant whose handle is not cached (p50,
 *   p99), against a warm query of a cached one in the same run.
 *
 *   pnpm bench:scale [--tenants N] [--max-open N] [--concurrency N] [--replication on|off] [--no-append]
 *
 * Appends a block to loadtest/RESULTS.md unless --no-append (or fewer than
 * 10,000 tenants: a smoke run).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, platform, release, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@domicile/testkit';
import { scrapeMetrics } from './bench/node-metrics.ts';
import { publishResults } from './bench/report.ts';
import { parseCommandLine, usageError, wholeNumber } from './bench/command-line.ts';

const values = parseCommandLine('pnpm bench:scale', {
  tenants: { type: 'string', default: '100000' },
  'max-open': { type: 'string', default: '2000' },
  concurrency: { type: 'string', default: '32' },
  replication: { type: 'string', default: 'on' },
  'cold-samples': { type: 'string', default: '1000' },
  'no-append': { type: 'boolean', default: false },
});
const int = (name: string, v: string | undefined): number => wholeNumber('pnpm bench:scale', name, v, NaN, 1, Number.MAX_SAFE_INTEGER);
const TENANTS = int('tenants', values.tenants);
const MAX_OPEN = int('max-open', values['max-open']);
const CONCURRENCY = int('concurrency', values.concurrency);
const COLD_SAMPLES = Math.min(int('cold-samples', values['cold-samples']), Math.max(1, TENANTS - MAX_OPEN));
if (values.replication !== 'on' && values.replication !== 'off') usageError('pnpm bench:scale', `--replication must be on or off, got ${JSON.stringify(values.replication)}`);
const WORKERS = 2;
const ADMIN = 'scale-bench-admin-token-0123456789';
const REPO = fileURLToPath(new URL('../', import.meta.url));
const BIN = path.join(REPO, 'packages/cli/bin/domicile.js');
const SLICES = 10;

const log = (line: string) => process.stderr.write(`${line}\n`);
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const n0 = (x: number) => Math.round(x).toLocaleString('en-US');
const ms = (x: number) => (x >= 10 ? `${x.toFixed(0)} ms` : x >= 1 ? `${x.toFixed(1)} ms` : `${Math.round(x * 1000)} µs`);
const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;

/** VmRSS and VmHWM (KiB) and the number of open fds of a process. */
function sample(pid: number): { rssKiB: number; hwmKiB: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM'), fds: readdirSync(`/proc/${pid}/fd`).length };
}

const dataDir = mkdtempSync(path.join(tmpdir(), 'domicile-scale-'));
const port = await freePort();
const url = `http://127.0.0.1:${port}`;
const child = spawn(process.execPath, [BIN, 'serve'], {
  cwd: REPO,
  env: {
    ...process.env,
    DOMICILE_HOST: '127.0.0.1', DOMICILE_PORT: String(port), DOMICILE_DATA_DIR: dataDir, DOMICILE_WORKERS: String(WORKERS),
    DOMICILE_MAX_OPEN_SHARDS: String(MAX_OPEN), DOMICILE_ADMIN_TOKENS: `admin:${ADMIN}`, DOMICILE_LOG_LEVEL: 'warn',
    DOMICILE_REPLICATION: values.replication,
    // As `pnpm start` and the Docker image run a node (docs/shards.md, "Memory per handle").
    MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2',
  },
  stdio: ['ignore', 'ignore', 'pipe'],
});
let stderr = '';
child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
const cleanup = () => {
  child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
};
process.once('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));
const pid = child.pid!;

async function api(method: string, route: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}${route}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  try { return { status: res.status, body: JSON.parse(text) }; } catch { return { status: res.status, body: text }; }
}

for (let deadline = Date.now() + 30_000; ;) {
  if (child.exitCode !== null) throw new Error(`domicile serve exited with ${child.exitCode}:\n${stderr}`);
  try { if ((await fetch(`${url}/readyz`)).status === 200) break; } catch { /* not yet */ }
  if (Date.now() > deadline) throw new Error(`domicile serve did not become ready:\n${stderr}`);
  await new Promise((r) => setTimeout(r, 100));
}
const idle = sample(pid);
log(`domicile serve ready (pid ${pid}, RSS ${mib(idle.rssKiB)}, ${idle.fds} fds); creating ${n0(TENANTS)} tenants, ${CONCURRENCY} in flight`);

const id = (i: number) => `scale-${String(i).padStart(7, '0')}`;
let peakFds = idle.fds;
let peakRss = idle.rssKiB;
const sampler = setInterval(() => {
  try {
    const s = sample(pid);
    peakFds = Math.max(peakFds, s.fds);
    peakRss = Math.max(peakRss, s.rssKiB);
  } catch { /* exited */ }
}, 250);

// Create: each tenant gets a table and a row, so its file is a real shard with data.
const sliceSize = Math.ceil(TENANTS / SLICES);
let overloaded = 0;
const slices: { from: number; to: number; perSec: number; createP50: number; createP99: number; rssKiB: number; fds: number }[] = [];
const t0 = performance.now();
for (let from = 0; from < TENANTS; from += sliceSize) {
  const to = Math.min(TENANTS, from + sliceSize);
  const lat: number[] = [];
  let next = from;
  const s0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < to) {
      const t = id(next++);
      const c0 = performance.now();
      let created = await api('POST', '/v1/tenants', { id: t, residency: 'any' });
      // Creation backpressure (docs/http-api.md, "Creation storms"): retry as a client would, counted.
      while (created.status === 503 && created.body?.error?.code === 'OVERLOADED') {
        overloaded++;
        await new Promise((r) => setTimeout(r, 1000));
        created = await api('POST', '/v1/tenants', { id: t, residency: 'any' });
      }
      lat.push(performance.now() - c0);
      if (created.status !== 201) throw new Error(`creating ${t}: ${created.status} ${JSON.stringify(created.body)}`);
      const w = await api('POST', `/v1/tenants/${t}/batch`, {
        statements: [{ sql: 'CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)' }, { sql: "INSERT INTO kv VALUES ('created', ?)", params: [t] }],
      });
      if (w.status !== 200) throw new Error(`writing ${t}: ${w.status} ${JSON.stringify(w.body)}`);
    }
  }));
  const s = sample(pid);
  slices.push({ from, to, perSec: (to - from) / ((performance.now() - s0) / 1000), createP50: pct(lat, 50), createP99: pct(lat, 99), rssKiB: s.rssKiB, fds: s.fds });
  log(`  ${n0(to)} tenants: ${n0(slices.at(-1)!.perSec)}/s, create p50 ${ms(pct(lat, 50))}, RSS ${mib(s.rssKiB)}, ${s.fds} fds`);
}
const createSeconds = (performance.now() - t0) / 1000;

// Cold opens: tenants created long ago (their handles were evicted), read once each, one at a time.
const cold: number[] = [];
const stride = Math.max(1, Math.floor((TENANTS - MAX_OPEN) / COLD_SAMPLES));
for (let k = 0; k < COLD_SAMPLES; k++) {
  const t = id(k * stride);
  const c0 = performance.now();
  const r = await api('POST', `/v1/tenants/${t}/query`, { sql: "SELECT v FROM kv WHERE k = 'created'" });
  cold.push(performance.now() - c0);
  if (r.status !== 200 || r.body.rows?.[0]?.[0] !== t) throw new Error(`cold read of ${t}: ${r.status} ${JSON.stringify(r.body)}`);
}
// Warm: the same read on one tenant whose handle is open.
const warm: number[] = [];
const hot = id(TENANTS - 1);
for (let k = 0; k < COLD_SAMPLES; k++) {
  const c0 = performance.now();
  const r = await api('POST', `/v1/tenants/${hot}/query`, { sql: "SELECT v FROM kv WHERE k = 'created'" });
  warm.push(performance.now() - c0);
  if (r.status !== 200) throw new Error(`warm read: ${r.status}`);
}
// Directory lookups at full size.
const lookups: number[] = [];
for (let k = 0; k < Math.min(1000, TENANTS); k++) {
  const c0 = performance.now();
  const r = await api('GET', `/v1/tenants/${id((k * 7919) % TENANTS)}`);
  lookups.push(performance.now() - c0);
  if (r.status !== 200) throw new Error(`lookup: ${r.status}`);
}
clearInterval(sampler);
const end = sample(pid);
peakFds = Math.max(peakFds, end.fds);
peakRss = Math.max(peakRss, end.rssKiB);
const openShards = (await scrapeMetrics(url)).value('domicile_open_shards');

child.kill('SIGTERM');
await new Promise<void>((r) => { if (child.exitCode !== null) r(); else child.once('exit', () => r()); });

const cpu = cpus();
const date = new Date().toISOString();
const command = ['pnpm bench:scale', ...process.argv.slice(2)].join(' ');
const rssOk = peakRss <= 1024 * 1024;
const md = [
  `## Scale: ${n0(TENANTS)} tenants on one node (\`pnpm bench:scale\`), ${date.slice(0, 10)}`,
  '',
  `Command: \`${command}\`, ${date}.`,
  `Machine: ${cpu[0]?.model.trim() ?? 'unknown'} × ${cpu.length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${platform()} ${release()}; load average ${loadavg()[0]!.toFixed(2)} at the end.`,
  '',
  `Method: one \`domicile serve\` (${WORKERS} workers, DOMICILE_MAX_OPEN_SHARDS=${MAX_OPEN}, replication ${values.replication}${values.replication === 'on' ? ', async, default filesystem bucket' : ''}, embedded directory, MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX ?? '2'} as \`pnpm start\` and the image set it); ` +
    `each tenant created through POST /v1/tenants and given a table and a row by one /batch, ${CONCURRENCY} tenants in flight. ` +
    `RSS and file descriptors read from /proc/<pid> every 250 ms. Cold open: the first read of a tenant whose handle was evicted long ago, ${n0(COLD_SAMPLES)} tenants one at a time; warm: the same read on a tenant whose handle is open.`,
  '',
  '| measure | value |',
  '|---|---|',
  `| tenants created | ${n0(TENANTS)} in ${createSeconds.toFixed(0)} s (${n0(TENANTS / createSeconds)}/s overall; ${n0(overloaded)} creations answered 503 OVERLOADED and retried) |`,
  `| RSS: idle / peak / end | ${mib(idle.rssKiB)} / **${mib(peakRss)}** / ${mib(end.rssKiB)} (goal ≤ 1024 MiB: ${rssOk ? 'met' : '**missed**'}) |`,
  `| open fds: idle / peak / end | ${idle.fds} / **${peakFds}** / ${end.fds} (cache bound ${MAX_OPEN} handles; open shards at the end: ${openShards}) |`,
  `| cold open (first read of an evicted tenant) | p50 **${ms(pct(cold, 50))}**, p99 ${ms(pct(cold, 99))} |`,
  `| warm read (handle open) | p50 ${ms(pct(warm, 50))}, p99 ${ms(pct(warm, 99))} |`,
  `| GET /v1/tenants/:id at ${n0(TENANTS)} tenants | p50 ${ms(pct(lookups, 50))}, p99 ${ms(pct(lookups, 99))} |`,
  '',
  'Creation by slice (embedded directory growing):',
  '',
  '| tenants | created/s | create p50 | create p99 | RSS after | fds after |',
  '|---|---|---|---|---|---|',
  ...slices.map((s) => `| ${n0(s.from)}–${n0(s.to)} | ${n0(s.perSec)} | ${ms(s.createP50)} | ${ms(s.createP99)} | ${mib(s.rssKiB)} | ${s.fds} |`),
  '',
].join('\n');
publishResults(md, !values['no-append'] && TENANTS >= 10_000);
process.exit(0);
