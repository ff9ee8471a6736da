import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { busyPerSecond, callersOf, summarizeWindow, type CpuProfile } from './bench/cpu-profile.ts';

const frame = (functionName: string, url = 'file:///repo/src/x.ts', lineNumber = 0) => ({ functionName, url, lineNumber });

/**
 * root ─┬─ (idle)
 *       └─ main ─┬─ work ── hash
 *                └─ hash            (hash reached from two paths)
 * A sample every 100 ms from 0 s: second 0 idle, second 1 in work>hash, second 2 alternating main>hash and main.
 */
function profile(): CpuProfile {
  const nodes = [
    { id: 1, callFrame: frame('(root)', ''), children: [2, 3] },
    { id: 2, callFrame: frame('(idle)', '') },
    { id: 3, callFrame: frame('main'), children: [4, 6] },
    { id: 4, callFrame: frame('work'), children: [5] },
    { id: 5, callFrame: frame('hash', 'node:crypto', 220) },
    { id: 6, callFrame: frame('hash', 'node:crypto', 220) },
  ];
  const samples: number[] = [];
  for (let i = 0; i < 10; i++) samples.push(2);
  for (let i = 0; i < 10; i++) samples.push(5);
  for (let i = 0; i < 10; i++) samples.push(i % 2 === 0 ? 6 : 3);
  // The first delta is the time from the start to the first sample; each sample stands for the delta to the next.
  return { nodes, startTime: 0, samples, timeDeltas: samples.map((_, i) => (i === 0 ? 0 : 100_000)) };
}

describe('CPU profile summary', () => {
  it('gives the busy share of each second', () => {
    const busy = busyPerSecond(profile());
    expect(busy.map((b) => Math.round(b * 100))).toEqual([0, 100, 100]);
  });

  it('splits a window into self and inclusive time, a function counted once per sample', () => {
    const w = summarizeWindow(profile(), { from: 1, to: 3 });
    // The last sample (2.9 s, in main) stands for no time: nothing follows it.
    expect(w.busySeconds).toBeCloseTo(1.9, 5);
    const self = Object.fromEntries(w.self.map((f) => [f.name.split(' ')[0], f.seconds]));
    expect(self.hash).toBeCloseTo(1.5, 5);
    expect(self.main).toBeCloseTo(0.4, 5);
    const incl = Object.fromEntries(w.inclusive.map((f) => [f.name.split(' ')[0], f.share]));
    expect(incl.main).toBeCloseTo(1, 5);
    expect(incl.work).toBeCloseTo(1 / 1.9, 5);
    expect(w.self[0]!.name).toBe('hash node:crypto:221');
  });

  it('names the paths a function was called from', () => {
    const paths = callersOf(profile(), 'hash', { from: 1, to: 3 });
    expect(paths.map((p) => [p.path.map((n) => n.split(' ')[0]).join('<'), Number(p.seconds.toFixed(2))])).toEqual([
      ['work<main<(root)', 1],
      ['main<(root)', 0.5],
    ]);
  });
});

describe('pnpm profile:summary', () => {
  const REPO = fileURLToPath(new URL('..', import.meta.url));
  const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'loadtest/profile-summary.ts', ...args], { cwd: REPO, encoding: 'utf8' });

  it('prints a folder\'s profiles, a window of one, and refuses bad input with exit 2 and one line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'domicile-profiles-'));
    try {
      writeFileSync(join(dir, 'a.cpuprofile'), JSON.stringify(profile()));
      writeFileSync(join(dir, 'notes.txt'), 'not a profile');
      const all = run(dir);
      expect(all.status, all.stderr).toBe(0);
      expect(all.stdout).toContain('busy % per second: 0:0 1:100 2:100');
      const win = run(join(dir, 'a.cpuprofile'), '--from', '1', '--to', '3', '--top', '2');
      expect(win.status, win.stderr).toBe(0);
      // (The last sample stands for no time: 19 samples of 0.1 s.)
      expect(win.stdout).toContain('window 1–3 s: busy 1.90 of 1.90 s\nself:\n 78.9 %  hash node:crypto:221\n 21.1 %  main src/x.ts:1\ninclusive:');
      for (const [args, message] of [
        [[join(dir, 'notes.txt')], /notes\.txt: .*JSON/],
        [[join(dir, 'missing')], /cannot read .*missing/],
        [[dir, '--top', '0'], /--top must be a whole number from 1 to 1000, got "0"/],
        [[dir, '--from=-1'], /--from must be seconds ≥ 0/],
        [[], /name at least one \.cpuprofile file/],
      ] as const) {
        const r = run(...args);
        expect(r.status, args.join(' ')).toBe(2);
        expect(r.stderr.trim()).toMatch(new RegExp(`^pnpm profile:summary: .*${message.source}`));
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
