import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { seededRandom } from '@domicile/testkit/random';
import { bootstrapMedianInterval, median, publishResults } from './bench/report.ts';

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function results(text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'domicile-results-'));
  dirs.push(dir);
  const file = path.join(dir, 'RESULTS.md');
  writeFileSync(file, text);
  return file;
}

describe('publishResults', () => {
  it('prints the report, and with append makes it the newest entry, below the preamble and above the older ones', () => {
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const file = results('# Benchmark results\n\nNewest first.\n\n## Older run\n\nold numbers\n');
    publishResults('## Newer run\n\nnew numbers\n', true, file);
    expect(readFileSync(file, 'utf8')).toBe('# Benchmark results\n\nNewest first.\n\n## Newer run\n\nnew numbers\n\n## Older run\n\nold numbers\n');
    expect(out).toHaveBeenCalledWith('## Newer run\n\nnew numbers\n');
  });

  it('without append prints only: the file is untouched', () => {
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const text = '# Benchmark results\n\n## Older run\n';
    const file = results(text);
    publishResults('## Newer run\n', false, file);
    expect(readFileSync(file, 'utf8')).toBe(text);
  });

  it('appends after the preamble when the file has no entry yet', () => {
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const file = results('# Benchmark results\n');
    publishResults('## First run\n', true, file);
    expect(readFileSync(file, 'utf8')).toBe('# Benchmark results\n\n## First run\n');
  });
});

describe('bootstrapMedianInterval', () => {
  const ratios = [0.81, 1.06, 0.79, 0.78, 0.73, 0.95, 0.92, 0.78, 0.74, 0.99, 0.76, 0.99, 0.67, 1.1, 0.67, 0.89];

  it('brackets the median within the values, and the same seed gives the same interval', () => {
    const a = bootstrapMedianInterval(ratios, seededRandom(7));
    expect(a.low).toBeLessThanOrEqual(median(ratios));
    expect(a.high).toBeGreaterThanOrEqual(median(ratios));
    expect(a.low).toBeGreaterThanOrEqual(Math.min(...ratios));
    expect(a.high).toBeLessThanOrEqual(Math.max(...ratios));
    expect(a.high).toBeGreaterThan(a.low);
    expect(bootstrapMedianInterval(ratios, seededRandom(7))).toEqual(a);
  });

  it('is narrower for less spread and for more cycles, a point for equal values, NaN for none', () => {
    const wide = bootstrapMedianInterval(ratios, seededRandom(1));
    const narrow = bootstrapMedianInterval(ratios.map((x) => 0.9 + (x - 0.9) / 4), seededRandom(1));
    expect(narrow.high - narrow.low).toBeLessThan((wide.high - wide.low) / 2);
    const more = bootstrapMedianInterval([...ratios, ...ratios, ...ratios, ...ratios], seededRandom(1));
    expect(more.high - more.low).toBeLessThan(wide.high - wide.low);
    expect(bootstrapMedianInterval([0.9, 0.9, 0.9], seededRandom(1))).toEqual({ low: 0.9, high: 0.9 });
    expect(bootstrapMedianInterval([], seededRandom(1))).toEqual({ low: NaN, high: NaN });
  });
});
