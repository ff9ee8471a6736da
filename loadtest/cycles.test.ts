import { describe, expect, it } from 'vitest';
import { cycleRatios, orderSetSize, sliceOrders } from './bench/cycles.ts';
import { median } from './bench/report.ts';

describe('median', () => {
  it('takes the middle value, and the mean of the two middle ones for an even count', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([0.8, 1.2, 0.9, 1.0])).toBeCloseTo(0.95, 12);
    expect(median([])).toBeNaN();
  });
});

describe('cycleRatios', () => {
  const off = [{ cycle: 0, opsPerSec: 1000 }, { cycle: 1, opsPerSec: 500 }, { cycle: 2, opsPerSec: 800 }];

  it('compares each slice with the baseline slice of its own cycle, whatever the order', () => {
    const r = cycleRatios([{ cycle: 2, opsPerSec: 720 }, { cycle: 0, opsPerSec: 900 }, { cycle: 1, opsPerSec: 450 }], off);
    expect(r.ratios).toEqual([0.9, 0.9, 0.9]);
    expect(r.ratio).toBeCloseTo(0.9, 12);
    // The machine halved its speed in cycle 1; the ratios do not see it, and neither does the total.
    expect(r.total).toBeCloseTo((720 + 900 + 450) / (800 + 1000 + 500), 12);
  });

  it('takes the median of the cycles, not their mean', () => {
    const r = cycleRatios([{ cycle: 0, opsPerSec: 1500 }, { cycle: 1, opsPerSec: 400 }, { cycle: 2, opsPerSec: 680 }], off);
    expect(r.ratio).toBeCloseTo(0.85, 12);
  });

  it('compares a slice outside the cycles (sync, once) with the median baseline', () => {
    const r = cycleRatios([{ cycle: 3, opsPerSec: 80 }], off);
    expect(r.ratios).toEqual([0.1]);
    expect(r.total).toBeCloseTo(0.1, 12);
  });
});

describe('sliceOrders', () => {
  /** How often mode b's slice comes right after mode a's, within the cycles and across their ends. */
  function follows(orders: number[][]): { within: Map<string, number>; doubles: number } {
    const within = new Map<string, number>();
    for (const o of orders) for (let i = 1; i < o.length; i++) within.set(`${o[i - 1]}>${o[i]}`, (within.get(`${o[i - 1]}>${o[i]}`) ?? 0) + 1);
    let doubles = 0;
    for (let c = 1; c < orders.length; c++) if (orders[c - 1]!.at(-1) === orders[c]![0]) doubles++;
    return { within, doubles };
  }

  it('gives every cycle each mode once, starting 0, 1 (async before the bound)', () => {
    for (const n of [2, 3, 4, 5]) {
      const orders = sliceOrders(n, 13);
      expect(orders).toHaveLength(13);
      for (const o of orders) expect([...o].sort()).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(orders[0]!.slice(0, 2)).toEqual([0, 1]);
    }
  });

  it('puts every mode right after every other one equally often in a whole number of sets', () => {
    for (const n of [3, 4, 5]) {
      const sets = 2;
      const { within } = follows(sliceOrders(n, sets * orderSetSize(n)));
      // Every ordered pair of different modes, the same number of times.
      expect(within.size, `n=${n}`).toBe(n * (n - 1));
      const counts = new Set(within.values());
      expect(counts.size, `n=${n}: ${JSON.stringify([...within])}`).toBe(1);
    }
  });

  it('never gives a mode two slices in a row across a cycle\'s end', () => {
    for (const n of [2, 3, 4, 5]) expect(follows(sliceOrders(n, 40)).doubles, `n=${n}`).toBe(0);
    // The old order (reversed every other cycle) did: the first and last modes, at every cycle's end.
    const old = Array.from({ length: 8 }, (_, c) => (c % 2 === 0 ? [0, 1, 2, 3] : [3, 2, 1, 0]));
    expect(follows(old).doubles).toBe(7);
  });

  it('refuses a count of modes that is not a whole number ≥ 1', () => {
    expect(() => sliceOrders(0, 3)).toThrow(RangeError);
    expect(() => sliceOrders(2.5, 3)).toThrow(RangeError);
  });
});
