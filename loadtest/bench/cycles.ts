/**
 * Ratios of interleaved load slices (`pnpm bench:replication`): each mode
 * takes one slice per cycle, and a slice is compared with the baseline's
 * slice of the same cycle, so a drift of the machine between cycles cancels.
 */
import { median } from './report.ts';

/** The throughput of one counted slice, and its cycle. */
export interface CycleSample {
  readonly cycle: number;
  readonly opsPerSec: number;
}

export interface CycleRatios {
  /** Each sample's ratio, in the order of the samples. */
  readonly ratios: number[];
  /** Their median: the mode's ratio. */
  readonly ratio: number;
  /** All the samples' throughput against all of their baselines'. */
  readonly total: number;
}

/**
 * Each of `samples` against the `baseline` sample of its cycle. When some
 * sample has no baseline in its cycle (sync, run once after the cycles),
 * every sample is compared with the baseline's median instead.
 */
export function cycleRatios(samples: readonly CycleSample[], baseline: readonly CycleSample[]): CycleRatios {
  const byCycle = new Map(baseline.map((b) => [b.cycle, b.opsPerSec]));
  const perCycle = samples.every((s) => byCycle.has(s.cycle));
  const baseOf = perCycle ? (s: CycleSample) => byCycle.get(s.cycle)! : () => median(baseline.map((b) => b.opsPerSec));
  const ratios = samples.map((s) => s.opsPerSec / baseOf(s));
  const sum = (f: (s: CycleSample) => number) => samples.reduce((a, s) => a + f(s), 0);
  return { ratios, ratio: median(ratios), total: sum((s) => s.opsPerSec) / sum(baseOf) };
}
