import { describe, expect, it } from 'vitest';
import { cycleRatios } from './bench/cycles.ts';
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
