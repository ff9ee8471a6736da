/**
 * `pnpm bench`: the data-plane scenarios against Domicile and its baselines in
 * one run (loadtest/bench/harness.ts), printed as Markdown and appended to
 * loadtest/RESULTS.md.
 *
 *   pnpm bench [--scenario NAME]... [--duration S] [--tiny] [--sync] [--tenant-tokens] [--node-env KEY=VALUE]... [--profile-node DIR] [--no-append] [--json FILE]
 *
 * --node-env: extra environment for the Domicile node (repeatable), to compare
 * a setting against the defaults; the report names it.
 * --profile-node: a V8 CPU profile of every thread of the Domicile node, written
 * into DIR when the run stops it (samples carry time: the node's whole life,
 * set-up included, so select its measured windows when reading them).
 * --sync: also measure a second node with sync durability (the cost of sync).
 * --tenant-tokens: Domicile requests carry each tenant's own tenant token (a
 * JWT the node verifies) instead of the admin token, as per-tenant clients do.
 * --tiny: a few seconds and few tenants (CI smoke). --no-append (or
 * DOMICILE_BENCH_NO_APPEND=1): print only. --tiny never appends.
 */
import { writeFileSync } from 'node:fs';
import { formatReport, runBench } from './bench/harness.ts';
import { publishResults } from './bench/report.ts';
import { parseNodeEnv } from './bench/node-env.ts';
import { loadScenarioFile } from './bench/scenarios.ts';
import { parseCommandLine } from './bench/command-line.ts';

const values = parseCommandLine('pnpm bench', {
  scenario: { type: 'string', multiple: true },
  duration: { type: 'string' },
  tiny: { type: 'boolean', default: false },
  sync: { type: 'boolean', default: false },
  'no-append': { type: 'boolean', default: false },
  json: { type: 'string' },
  'node-env': { type: 'string', multiple: true },
  'profile-node': { type: 'string' },
  'tenant-tokens': { type: 'boolean', default: false },
});

const duration = values.duration === undefined ? undefined : Number(values.duration);
if (duration !== undefined && !(duration > 0 && duration <= 600)) {
  console.error(`--duration must be seconds in (0, 600], got ${JSON.stringify(values.duration)}`);
  process.exit(2);
}
let nodeEnv: Record<string, string>;
try {
  nodeEnv = parseNodeEnv(values['node-env'] ?? []);
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
const file = loadScenarioFile();
const names = values.scenario ?? Object.keys(file.scenarios);
for (const n of names) {
  if (!file.scenarios[n]) {
    console.error(`unknown scenario ${JSON.stringify(n)} (known: ${Object.keys(file.scenarios).join(', ')})`);
    process.exit(2);
  }
}

// Hard bound on the whole run: 4 targets × (warm-up + window) per scenario, plus start-up and setup.
const perTarget = (n: string) => (duration ?? (values.tiny ? file.tiny.durationSeconds : file.scenarios[n]!.durationSeconds)) + 2;
const budgetMs = (names.reduce((s, n) => s + (values.sync ? 5 : 4) * perTarget(n), 0) + (values.sync ? 360 : 180)) * 1000;
setTimeout(() => {
  console.error(`pnpm bench: exceeded its ${Math.round(budgetMs / 1000)} s budget; stopping`);
  process.exit(1); // exit handlers SIGKILL the servers and delete Postgres' temp dir
}, budgetMs).unref();
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

const command = ['pnpm bench', ...process.argv.slice(2)].join(' ');
const report = await runBench({ scenarios: names, ...(duration === undefined ? {} : { durationSeconds: duration }), tiny: values.tiny, sync: values.sync, tenantTokens: values['tenant-tokens'], nodeEnv, ...(values['profile-node'] ? { profileNodeDir: values['profile-node'] } : {}) });
const markdown = formatReport(report, command);
if (values.json) writeFileSync(values.json, JSON.stringify(report, null, 2));
publishResults(markdown, !values.tiny && !values['no-append'] && process.env.DOMICILE_BENCH_NO_APPEND !== '1');
