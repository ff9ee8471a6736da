import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RESULTS_FILE } from './bench/harness.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));

// The benchmark itself on a tiny history (the full run is not a test): it builds, restores and reports.
describe('pnpm bench:restore-history', () => {
  it('restores a small history and prints its table without touching RESULTS.md', () => {
    const before = readFileSync(RESULTS_FILE, 'utf8');
    const res = spawnSync(process.execPath, ['--import', 'tsx', 'loadtest/restore-history-bench.ts', '--txs', '300', '--per-segment', '50', '--no-append'], { cwd: REPO, encoding: 'utf8' });
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/300 one-row transactions .* in 6 segments of 50/);
    expect(res.stdout).toMatch(/\| restore \| [\d.]+ s \(\*\*[\d,]+ transactions\/s\*\*\)/);
    expect(readFileSync(RESULTS_FILE, 'utf8')).toBe(before);
  });

  it('refuses a bad --txs with exit 2 and one line', () => {
    const res = spawnSync(process.execPath, ['--import', 'tsx', 'loadtest/restore-history-bench.ts', '--txs', 'many'], { cwd: REPO, encoding: 'utf8' });
    expect(res.status).toBe(2);
    expect(res.stderr.trim()).toMatch(/^pnpm bench:restore-history: --txs must be a whole number/);
  });
});
