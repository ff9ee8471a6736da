/**
 * Reading V8 CPU profiles (`--cpu-prof`, what `pnpm bench --profile-node` and
 * `pnpm bench:replication --profile-node` write per thread): which seconds a
 * thread was busy, and where a window of it went. A profile samples wall-clock
 * time while the thread is not idle, so on an oversubscribed machine a thread
 * that was runnable but descheduled still counts as busy: compare shares
 * within one profile, and take CPU totals from /proc (the benches print them).
 */

/** The parts of a `.cpuprofile` this reads. */
export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  /** Microseconds (the profiler's clock). */
  startTime: number;
  samples: number[];
  /** Microseconds before each sample. */
  timeDeltas: number[];
}

/** One function's share of a window's busy time. */
export interface FunctionShare {
  /** `name file:line` (the last two parts of the URL). */
  name: string;
  seconds: number;
  /** Of the busy time. */
  share: number;
}

/** Where a window of a thread's time went. */
export interface ProfileWindow {
  seconds: number;
  busySeconds: number;
  /** Time in the function itself. */
  self: FunctionShare[];
  /** Time with the function anywhere on the stack (counted once per sample). */
  inclusive: FunctionShare[];
}

const IDLE = '(idle)';

interface Indexed {
  byId: Map<number, CpuProfile['nodes'][number]>;
  parent: Map<number, number>;
  /** Each sample's time since the profile started (s) and the time it stands for (s): the delta to the next sample. */
  at: Float64Array;
  weight: Float64Array;
}

function index(p: CpuProfile): Indexed {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const at = new Float64Array(p.samples.length);
  const weight = new Float64Array(p.samples.length);
  let t = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    at[i] = t / 1e6;
    weight[i] = (p.timeDeltas[i + 1] ?? 0) / 1e6;
  }
  return { byId, parent, at, weight };
}

function frameName(n: CpuProfile['nodes'][number]): string {
  const f = n.callFrame;
  return `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
}

/** Busy share of every whole second of the profile (index = second since its start). */
export function busyPerSecond(p: CpuProfile): number[] {
  const ix = index(p);
  const busy: number[] = [];
  const all: number[] = [];
  p.samples.forEach((id, i) => {
    const s = Math.floor(ix.at[i]!);
    busy[s] ??= 0;
    all[s] ??= 0;
    all[s] += ix.weight[i]!;
    if (ix.byId.get(id)?.callFrame.functionName !== IDLE) busy[s] += ix.weight[i]!;
  });
  return Array.from({ length: all.length }, (_, s) => ((all[s] ?? 0) > 0 ? (busy[s] ?? 0) / all[s]! : 0));
}

/** Self and inclusive time per function over samples in [from, to) seconds, largest first, at most `top` each. */
export function summarizeWindow(p: CpuProfile, opts: { from?: number; to?: number; top?: number } = {}): ProfileWindow {
  const ix = index(p);
  const from = opts.from ?? 0;
  const to = opts.to ?? Infinity;
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let seconds = 0;
  let busySeconds = 0;
  p.samples.forEach((id, i) => {
    if (ix.at[i]! < from || ix.at[i]! >= to) return;
    const w = ix.weight[i]!;
    seconds += w;
    const leaf = ix.byId.get(id);
    if (!leaf || leaf.callFrame.functionName === IDLE) return;
    busySeconds += w;
    const name = frameName(leaf);
    self.set(name, (self.get(name) ?? 0) + w);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = ix.parent.get(cur)) {
      const n = frameName(ix.byId.get(cur)!);
      if (seen.has(n)) continue; // recursion: once per sample
      seen.add(n);
      inclusive.set(n, (inclusive.get(n) ?? 0) + w);
    }
  });
  const rank = (m: Map<string, number>): FunctionShare[] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, opts.top ?? 30).map(([name, s]) => ({ name, seconds: s, share: busySeconds > 0 ? s / busySeconds : 0 }));
  return { seconds, busySeconds, self: rank(self), inclusive: rank(inclusive) };
}

/** The call paths (up to `depth` callers, innermost first) under which `functionName` spent its self time in [from, to), largest first. */
export function callersOf(p: CpuProfile, functionName: string, opts: { from?: number; to?: number; depth?: number; top?: number } = {}): Array<{ path: string[]; seconds: number }> {
  const ix = index(p);
  const paths = new Map<string, { path: string[]; seconds: number }>();
  p.samples.forEach((id, i) => {
    if (ix.at[i]! < (opts.from ?? 0) || ix.at[i]! >= (opts.to ?? Infinity)) return;
    if (ix.byId.get(id)?.callFrame.functionName !== functionName) return;
    const path: string[] = [];
    for (let cur = ix.parent.get(id); cur !== undefined && path.length < (opts.depth ?? 6); cur = ix.parent.get(cur)) path.push(frameName(ix.byId.get(cur)!));
    const key = path.join(' < ');
    const e = paths.get(key) ?? { path, seconds: 0 };
    e.seconds += ix.weight[i]!;
    paths.set(key, e);
  });
  return [...paths.values()].sort((a, b) => b.seconds - a.seconds).slice(0, opts.top ?? 10);
}
