/**
 * `pnpm profile:summary`: where a thread's time went, from the V8 CPU
 * profiles `pnpm bench --profile-node DIR` and `pnpm bench:replication
 * --profile-node DIR` write (one per thread; loadtest/bench/cpu-profile.ts).
 *
 *   pnpm profile:summary FILE_OR_DIR... [--from S] [--to S] [--top N] [--callers NAME]
 *
 * Without --from/--to: each profile's busy share per second (find the
 * measured window: a profile covers the node's whole life, set-up included).
 * With them: the top functions by self and by inclusive time in that window
 * (seconds since the profile started). --callers NAME: the call paths under
 * which NAME spent its self time in the window.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { busyPerSecond, callersOf, summarizeWindow, type CpuProfile } from './bench/cpu-profile.ts';
import { usageError, wholeNumber } from './bench/command-line.ts';

const NAME = 'pnpm profile:summary';
let parsed: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    options: { from: { type: 'string' }, to: { type: 'string' }, top: { type: 'string' }, callers: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
}
try {
  parsed = parse();
} catch (err) {
  usageError(NAME, (err as Error).message);
}
const { values, positionals } = parsed!;
if (positionals.length === 0) usageError(NAME, 'name at least one .cpuprofile file or a folder of them');
const seconds = (flag: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) usageError(NAME, `--${flag} must be seconds ≥ 0, got ${JSON.stringify(v)}`);
  return n;
};
const from = seconds('from', values.from);
const to = seconds('to', values.to);
const top = wholeNumber(NAME, 'top', values.top, 25, 1, 1000);

const files = positionals.flatMap((p) => {
  try {
    return statSync(p).isDirectory() ? readdirSync(p).filter((f) => f.endsWith('.cpuprofile')).sort().map((f) => join(p, f)) : [p];
  } catch (err) {
    return usageError(NAME, `cannot read ${p}: ${(err as Error).message}`);
  }
});
const pct = (x: number) => `${(100 * x).toFixed(1).padStart(5)} %`;

for (const file of files) {
  let profile: CpuProfile;
  try {
    profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    if (!Array.isArray(profile.nodes) || !Array.isArray(profile.samples)) throw new Error('not a V8 CPU profile');
  } catch (err) {
    usageError(NAME, `${file}: ${(err as Error).message}`);
  }
  console.log(`## ${file}`);
  if (from === undefined && to === undefined && values.callers === undefined) {
    console.log(`busy % per second: ${busyPerSecond(profile).map((b, s) => `${s}:${Math.round(100 * b)}`).join(' ')}\n`);
    continue;
  }
  const w = summarizeWindow(profile, { from, to, top });
  console.log(`window ${from ?? 0}–${to ?? 'end'} s: busy ${w.busySeconds.toFixed(2)} of ${w.seconds.toFixed(2)} s`);
  if (values.callers !== undefined) {
    for (const c of callersOf(profile, values.callers, { from, to, top })) console.log(`${c.seconds.toFixed(3)} s  ${c.path.join(' < ')}`);
    console.log('');
    continue;
  }
  console.log('self:');
  for (const f of w.self) console.log(`${pct(f.share)}  ${f.name}`);
  console.log('inclusive:');
  for (const f of w.inclusive) console.log(`${pct(f.share)}  ${f.name}`);
  console.log('');
}
