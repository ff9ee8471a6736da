/** CPU time of another process, for benchmarks that compare CPU per operation (steadier than ops/s on a noisy machine). */
import { readFileSync } from 'node:fs';
import { cpuSeconds } from '../../packages/shard/src/thread-cpu.ts';
import { scrapeMetrics } from './node-metrics.ts';

/** User + system CPU seconds of process `pid` so far, every thread (Linux /proc, 10 ms clock ticks); 0 elsewhere or when it is gone. */
export function processCpuSeconds(pid: number | undefined): number {
  return pid === undefined ? 0 : cpuSeconds(pid) ?? 0;
}

/**
 * A node's CPU per answer (µs) by thread group: the event loop, the SQLite
 * workers, the replication shipper and the rest (V8's GC and compiler
 * threads, the libuv pool).
 */
export interface ThreadCpu {
  readonly main: number;
  readonly workers: number;
  readonly shipper: number;
  readonly other: number;
}

/** CPU seconds per thread of the node at `url` so far (`domicile_thread_cpu_seconds_total`; empty without /proc). */
export async function nodeThreadCpu(url: string): Promise<Map<string, number>> {
  return (await scrapeMetrics(url)).byLabel('domicile_thread_cpu_seconds_total', 'thread');
}

/** The change of each thread group's CPU between two {@link nodeThreadCpu} readings, in µs per answer; undefined without readings or answers. */
export function threadsPerAnswer(before: Map<string, number>, after: Map<string, number>, answers: number): ThreadCpu | undefined {
  if (after.size === 0 || answers === 0) return undefined;
  const per = (names: string[]) => names.reduce((sum, k) => sum + (after.get(k) ?? 0) - (before.get(k) ?? 0), 0) * 1e6 / answers;
  const keys = [...after.keys()];
  return { main: per(['main']), workers: per(keys.filter((k) => k.startsWith('shard-'))), shipper: per(['shipper']), other: per(['other']) };
}

/** The whole machine's CPU time so far, all cores together (seconds): busy (user, nice, system, irq, softirq, steal) and idle (idle, iowait). */
export interface MachineCpu {
  readonly busy: number;
  readonly idle: number;
}

/** The aggregate `cpu` line of a `/proc/stat` text as {@link MachineCpu}; undefined when there is none (clock ticks of 10 ms, as the rest of /proc). */
export function parseProcStat(text: string): MachineCpu | undefined {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (line === undefined) return undefined;
  const t = line.trim().split(/\s+/).slice(1).map(Number);
  if (t.length < 8 || t.slice(0, 8).some((x) => !Number.isFinite(x))) return undefined;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = t as [number, number, number, number, number, number, number, number];
  return { busy: (user + nice + system + irq + softirq + steal) / 100, idle: (idle + iowait) / 100 };
}

/** {@link parseProcStat} of this machine's `/proc/stat`; undefined without /proc. */
export function machineCpuSeconds(): MachineCpu | undefined {
  try {
    return parseProcStat(readFileSync('/proc/stat', 'latin1'));
  } catch {
    return undefined;
  }
}
