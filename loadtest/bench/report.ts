/** What every benchmark needs to report: the machine, percentiles, and RESULTS.md (newest first). */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, platform, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_FILE = path.join(fileURLToPath(new URL('../../', import.meta.url)), 'loadtest/RESULTS.md');

/** Inserts a report block into RESULTS.md as its newest entry (the file is newest first). */
function appendResults(markdown: string, file = RESULTS_FILE): void {
  const text = readFileSync(file, 'utf8');
  const at = text.indexOf('\n## ');
  const next = at < 0 ? `${text.trimEnd()}\n\n${markdown.trimEnd()}\n` : `${text.slice(0, at + 1)}${markdown.trimEnd()}\n\n${text.slice(at + 1)}`;
  writeFileSync(file, next);
}

/** Prints a benchmark's Markdown report and, when `append`, makes it RESULTS.md's newest entry (saying so on stderr). */
export function publishResults(markdown: string, append: boolean, file = RESULTS_FILE): void {
  process.stdout.write(`${markdown.trimEnd()}\n`);
  if (!append) return;
  appendResults(markdown, file);
  process.stderr.write(`appended to ${path.relative(process.cwd(), file) || file} (newest first)\n`);
}

/** One line on the machine a benchmark ran on (CPU, memory, Node, OS, load average at the time of the call). */
export function machineLine(): string {
  return `${cpus()[0]?.model.trim() ?? 'cpu'} × ${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${platform()}; load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`;
}

/** The `p`th percentile (nearest rank) of `xs`; NaN for none. */
export function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}

/** The middle value of `xs`; with an even count the mean of the two middle ones; NaN for none. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * A percentile bootstrap interval of the median of `xs`: the median of
 * `resamples` resamples of `xs` drawn with replacement, and the
 * `(1 − level) / 2` and `(1 + level) / 2` quantiles of those medians. It says
 * how far the median of another run of as many, equally noisy, cycles could
 * land. `random` draws uniformly from [0, 1) (a seeded generator keeps
 * reports reproducible). NaN bounds for no values.
 */
export function bootstrapMedianInterval(xs: readonly number[], random: () => number, resamples = 2000, level = 0.95): { low: number; high: number } {
  if (xs.length === 0) return { low: NaN, high: NaN };
  const medians: number[] = [];
  const draw = new Array<number>(xs.length);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < xs.length; i++) draw[i] = xs[Math.floor(random() * xs.length)]!;
    medians.push(median(draw));
  }
  medians.sort((a, b) => a - b);
  const at = (q: number) => medians[Math.min(medians.length - 1, Math.max(0, Math.round(q * (medians.length - 1))))]!;
  return { low: at((1 - level) / 2), high: at((1 + level) / 2) };
}
