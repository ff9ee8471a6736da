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

/**
 * The order of the `n` modes' slices in each of `cycles` cycles, as indices
 * 0..n-1. Whatever runs just before a slice can leave work behind that
 * falls into it (an async node ships and checkpoints for a while after its
 * load stops) or leave the machine in a state that favours it, so every mode
 * should follow every other one equally often, and none should take two
 * slices in a row (across a cycle's end): a balanced Latin square for
 * first-order carry-over (Williams, 1949). Rows: 0, 1, n−1, 2, n−2, … plus
 * the cycle's row number, mod n; for an odd n also each row reversed. A set
 * of {@link orderSetSize} cycles uses each row once: then every mode
 * directly follows every other one equally often within the cycles. The
 * rows are taken in an order where no mode runs twice in a row across a
 * cycle's end (for n = 2: 0, 1 in every cycle, so each follows the other
 * once per cycle). The first cycle starts 0, 1: the bench's bound (index 2)
 * needs async's (1) uploads before it.
 */
export function sliceOrders(n: number, cycles: number): number[][] {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`sliceOrders: n must be a whole number ≥ 1, got ${n}`);
  const base = [0];
  for (let k = 1, lo = 1, hi = n - 1; k < n; k++) base.push(k % 2 === 1 ? lo++ : hi--);
  const rows = Array.from({ length: n }, (_, i) => base.map((x) => (x + i) % n));
  if (n % 2 === 1 && n > 1) rows.push(...rows.map((r) => [...r].reverse()));
  const out: number[][] = [];
  let unused: number[][] = [];
  for (let c = 0; c < cycles; c++) {
    if (unused.length === 0) unused = [...rows];
    const last = out.at(-1)?.at(-1);
    const at = unused.findIndex((r) => r[0] !== last);
    if (at >= 0) {
      out.push(unused.splice(at, 1)[0]!);
      continue;
    }
    // n = 2: the other row would repeat the last mode; the same row again alternates the two across the cycles' ends.
    out.push(rows.find((r) => r[0] !== last) ?? unused.shift()!);
  }
  return out;
}

/** Cycles in a set that uses every row of {@link sliceOrders}' square once: n, or 2n for an odd n > 1. */
export function orderSetSize(n: number): number {
  return n % 2 === 1 && n > 1 ? 2 * n : n;
}
