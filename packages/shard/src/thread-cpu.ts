/**
 * CPU time per thread of this process, from Linux's /proc: which of the
 * node's threads (event loop, SQLite workers, shipper) is busy. Worker threads
 * report their OS thread id when they start; the router exports the totals as
 * `domicile_thread_cpu_seconds_total{thread}` (docs/operations.md). Elsewhere
 * (no /proc) every function here answers undefined.
 */
import { readFileSync, readlinkSync } from 'node:fs';

/** Clock ticks per second of /proc's utime and stime (USER_HZ: 100 on every Linux build Node supports). */
const TICKS_PER_SECOND = 100;

/** The calling thread's OS thread id (`/proc/thread-self` → `<pid>/task/<tid>`), or undefined without /proc. */
export function osThreadId(): number | undefined {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').at(-1));
    return Number.isSafeInteger(tid) && tid > 0 ? tid : undefined;
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds of thread `tid` of this process so far, or undefined when it is gone or there is no /proc. */
export function threadCpuSeconds(tid: number): number | undefined {
  return cpuSeconds('self', tid);
}

/**
 * User + system CPU seconds so far of process `pid` (every thread), or of its
 * thread `tid`; undefined when it is gone or there is no /proc. Benchmarks
 * read another process's this way.
 */
export function cpuSeconds(pid: number | 'self', tid?: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // Fields after the command name (which may hold spaces and parentheses): state is the 3rd field, utime the 14th, stime the 15th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? ticks / TICKS_PER_SECOND : undefined;
}
