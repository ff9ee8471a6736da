/** CPU time of another process, for benchmarks that compare CPU per operation (steadier than ops/s on a noisy machine). */
import { cpuSeconds } from '../../packages/shard/src/thread-cpu.ts';

/** User + system CPU seconds of process `pid` so far, every thread (Linux /proc, 10 ms clock ticks); 0 elsewhere or when it is gone. */
export function processCpuSeconds(pid: number | undefined): number {
  return pid === undefined ? 0 : cpuSeconds(pid) ?? 0;
}
