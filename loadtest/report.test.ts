import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { publishResults } from './bench/report.ts';

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
