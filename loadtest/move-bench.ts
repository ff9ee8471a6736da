/**
 * Move benchmark (issue 4): the write pause of a snapshot-handoff move of a
 * 100 MB tenant under write load, against stop-copy-start as the baseline,
 * measured in the same run on the same files.
 *
 * - A `domicile serve` child process (embedded default: two regions in one
 *   process, file:// buckets, async replication on, 2 SQLite workers).
 * - One tenant filled through the API to ≥ 100 MB (random 4 KB blobs).
 * - Load: 4 closed-loop writers (fetch, keep-alive), one small INSERT each per
 *   request, for the whole run; every answer other than 200 is a failed request.
 * - 20 moves back and forth between the two regions (`POST …/move?wait=1`):
 *   the node's own `writePauseMs` (fence → first write accepted on the target)
 *   and, client-side, the longest time any writer waited for one answer
 *   during each move.
 * - Baseline, stop-copy-start: with nothing else to do, a move that stops the
 *   tenant, copies its file and starts it elsewhere pauses writes at least for
 *   the copy of the whole file plus its fsync. Measured on the tenant's live
 *   file (copyFile + fsync into the other region's shard dir, then deleted),
 *   once after every move: a lower bound of that design's pause (it leaves
 *   out the fence and the switch), so the ratio flatters the baseline.
 *
 * Not a test. Run: pnpm bench:move [--quick] [--mb N] [--moves N] [--replication off] [--no-append]
 */
import { copyFile, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { startDomicile } from '@domicile/testkit';
import { machineLine, pct, publishResults } from './bench/report.ts';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const arg = (name: string, def: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : def);
const MB = arg('--mb', QUICK ? 20 : 100);
const MOVES = arg('--moves', QUICK ? 4 : 20);
const WRITERS = 4;
const APPEND = !args.includes('--no-append') && !QUICK;
/** `--replication off`: a diagnostic run without buckets (no new generation after each move). */
const REPLICATION = args.includes('--replication') ? String(args[args.indexOf('--replication') + 1]) : 'on';
const ADMIN = 'move-bench-admin-token-0123456789';
const POLICY = `version: 1
regions:
  bench-a: { jurisdiction: xx }
  bench-b: { jurisdiction: xx }
residencies:
  bench:
    regions: [bench-a, bench-b]
`;

const ms = (v: number) => `${v.toFixed(1)} ms`;

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'domicile-move-bench-'));
  const policyPath = path.join(dir, 'placement.yaml');
  writeFileSync(policyPath, POLICY);
  const server = await startDomicile({ dataDir: path.join(dir, 'data'), env: { DOMICILE_POLICY: policyPath, DOMICILE_ADMIN_TOKEN: ADMIN, DOMICILE_LOG_LEVEL: process.env.MOVE_BENCH_LOG ?? 'warn', DOMICILE_REPLICATION: REPLICATION } });
  const api = async (method: string, route: string, body?: unknown) => {
    const res = await fetch(`${server.url}${route}`, {
      method, headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json().catch(() => null)) as any };
  };
  try {
    const id = 'bench-mover';
    if ((await api('POST', '/v1/tenants', { id, residency: 'bench', region: 'bench-a' })).status !== 201) throw new Error('create failed');
    await api('POST', `/v1/tenants/${id}/query`, { sql: 'CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB)' });
    await api('POST', `/v1/tenants/${id}/query`, { sql: 'CREATE TABLE w (writer INTEGER, n INTEGER, PRIMARY KEY (writer, n))' });
    const rowsPerStmt = 2500;
    for (let filled = 0; filled < MB * 1024 * 1024; filled += rowsPerStmt * 4000) {
      const r = await api('POST', `/v1/tenants/${id}/query`, { sql: `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${rowsPerStmt}) INSERT INTO big (b) SELECT randomblob(4000) FROM c` });
      if (r.status !== 200) throw new Error(`fill failed: ${JSON.stringify(r.body)}`);
    }
    process.stderr.write(`filled ${MB} MB\n`);

    let stop = false;
    let acked = 0;
    let failed = 0;
    const failures: unknown[] = [];
    let window: number[] | null = null;
    const writer = async (w: number) => {
      for (let n = 0; !stop; n++) {
        const t0 = performance.now();
        try {
          const res = await fetch(`${server.url}/v1/tenants/${id}/query`, {
            method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
            body: JSON.stringify({ sql: 'INSERT INTO w (writer, n) VALUES (?, ?)', params: [w, n] }),
          });
          await res.arrayBuffer();
          if (res.status === 200) acked++;
          else { failed++; if (failures.length < 5) failures.push(res.status); }
        } catch (err) {
          failed++;
          if (failures.length < 5) failures.push(String(err));
        }
        window?.push(performance.now() - t0);
      }
    };
    const writers = Array.from({ length: WRITERS }, (_, i) => writer(i));
    await new Promise((r) => setTimeout(r, 1000));

    const pauses: number[] = [];
    const clientMax: number[] = [];
    const durations: number[] = [];
    const baseline: number[] = [];
    let bytes = 0;
    const ackedBefore = acked;
    const started = performance.now();
    for (let i = 0; i < MOVES; i++) {
      const to = i % 2 === 0 ? 'bench-b' : 'bench-a';
      window = [];
      const t0 = performance.now();
      const r = await api('POST', `/v1/tenants/${id}/move?wait=1`, { to });
      durations.push(performance.now() - t0);
      const lat = window;
      window = null;
      if (r.status !== 200) throw new Error(`move ${i} failed: ${JSON.stringify(r.body)}`);
      pauses.push(r.body.writePauseMs);
      clientMax.push(Math.max(...lat));
      bytes = r.body.bytesCopied;

      // Baseline: copy + fsync of the whole live file into the other region's shard dir.
      const t = await api('GET', `/v1/tenants/${id}`);
      const shardDir = path.join(server.dataDir, t.body.region, 'shards');
      const prefix = readdirSync(shardDir).find((d) => readdirSync(path.join(shardDir, d)).includes(`${id}.db`))!;
      const src = path.join(shardDir, prefix, `${id}.db`);
      const dest = path.join(server.dataDir, t.body.region === 'bench-a' ? 'bench-b' : 'bench-a', `baseline-${i}.db`);
      const b0 = performance.now();
      await copyFile(src, dest);
      const fh = await open(dest, 'r+');
      await fh.sync();
      await fh.close();
      baseline.push(performance.now() - b0);
      await rm(dest, { force: true });
      process.stderr.write(`move ${i + 1}/${MOVES} → ${to}: pause ${ms(r.body.writePauseMs)}, client max wait ${ms(clientMax.at(-1)!)}, took ${ms(durations.at(-1)!)}; copy+fsync baseline ${ms(baseline.at(-1)!)} (${((await stat(src)).size / 1048576).toFixed(0)} MB)\n`);
    }
    const elapsedS = (performance.now() - started) / 1000;
    stop = true;
    await Promise.all(writers);
    const writesDuring = acked - ackedBefore;

    const rows = [
      ['handoff (node: fence → first write on target)', pct(pauses, 50), pct(pauses, 99), Math.max(...pauses)],
      ['handoff (client: longest wait for one write per move)', pct(clientMax, 50), pct(clientMax, 99), Math.max(...clientMax)],
      ['baseline stop-copy-start (lower bound: copy + fsync of the file)', pct(baseline, 50), pct(baseline, 99), Math.max(...baseline)],
    ] as const;
    const machine = machineLine();
    const md = [
      '',
      `## Moves: write pause of a snapshot handoff (${new Date().toISOString().slice(0, 10)})`,
      '',
      `Command: \`pnpm bench:move${args.length ? ` ${args.join(' ')}` : ''}\``,
      '',
      `Machine: ${machine}. \`domicile serve\` child process (embedded default, two regions in one process, file:// buckets, ${REPLICATION === 'on' ? 'async replication on' : 'replication off'}, 2 SQLite workers).`,
      '',
      `Load: ${WRITERS} closed-loop writers (one small INSERT per request) for the whole run; ${MOVES} moves back and forth of one tenant of ${(bytes / 1048576).toFixed(1)} MB (\`POST /v1/tenants/:id/move?wait=1\`). Baseline: after each move, copy + fsync of the tenant's whole live file into the other region's directory (what any stop-copy-start move must at least pause for).`,
      '',
      '| measure | p50 | p99 | max |',
      '|---|---|---|---|',
      ...rows.map(([name, p50, p99, max]) => `| ${name} | ${ms(p50)} | ${ms(p99)} | ${ms(max)} |`),
      '',
      `Ratio handoff / stop-copy-start (node pause p50): **${(pct(pauses, 50) / pct(baseline, 50)).toFixed(3)}×** (p99: ${(pct(pauses, 99) / pct(baseline, 99)).toFixed(3)}×). Moves took p50 ${ms(pct(durations, 50))} end to end (copy, catch-up, the pending generation's snapshot and segments, fence, switch, purge). Writes acknowledged during the moves: ${writesDuring} (${(writesDuring / elapsedS).toFixed(0)}/s); failed requests: **${failed}**${failures.length ? ` (${JSON.stringify(failures)})` : ''}.`,
      '',
      `Goal p99 ≤ 100 ms with zero failed requests: **${pct(pauses, 99) <= 100 && failed === 0 ? 'met' : 'not met'}** (node p99 ${ms(pct(pauses, 99))}, client-side p99 ${ms(pct(clientMax, 99))}, ${failed} failed).`,
      '',
    ].join('\n');
    publishResults(md, APPEND);
  } finally {
    // MOVE_BENCH_LOG=info: the node's per-move log line, with where the fence's time went.
    if (process.env.MOVE_BENCH_LOG) for (const l of server.output().split('\n')) if (l.includes('tenant moved')) process.stderr.write(`${l}\n`);
    await server.dispose().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
