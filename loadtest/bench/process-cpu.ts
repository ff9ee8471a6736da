/** CPU time of another process, for benchmarks that compare CPU per operation (steadier than ops/s on a noisy machine). */
import { readFileSync } from 'node:fs';

/** User + system CPU seconds of process `pid` so far, every thread (Linux /proc; clock ticks of 10 ms); 0 elsewhere or when it is gone. */
export function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}
