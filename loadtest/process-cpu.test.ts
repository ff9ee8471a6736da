import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { machineCpuSeconds, parseProcStat } from './bench/process-cpu.ts';

describe('parseProcStat: the whole machine\'s CPU time', () => {
  it('adds user, nice, system, irq, softirq and steal as busy, idle and iowait as idle (10 ms ticks)', () => {
    const text = 'cpu  1000 20 300 5000 40 6 7 8 0 0\ncpu0 500 10 150 2500 20 3 3 4 0 0\nintr 12345\n';
    expect(parseProcStat(text)).toEqual({ busy: (1000 + 20 + 300 + 6 + 7 + 8) / 100, idle: (5000 + 40) / 100 });
  });

  it('reads the aggregate line only, not a core\'s', () => {
    expect(parseProcStat('cpu0 500 10 150 2500 20 3 3 4 0 0\n')).toBeUndefined();
  });

  it('refuses a line it cannot read', () => {
    expect(parseProcStat('cpu  1 2 3\n')).toBeUndefined();
    expect(parseProcStat('cpu  1 2 3 x 5 6 7 8\n')).toBeUndefined();
  });

  it.skipIf(!existsSync('/proc/stat'))('reads this machine: time goes on', () => {
    const a = machineCpuSeconds()!;
    const until = Date.now() + 50;
    while (Date.now() < until) { /* busy for 50 ms */ }
    const b = machineCpuSeconds()!;
    expect(b.busy).toBeGreaterThan(a.busy);
    expect(b.busy + b.idle).toBeGreaterThanOrEqual(a.busy + a.idle + 0.04);
  });
});
