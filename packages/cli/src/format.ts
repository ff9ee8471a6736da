/** Plain-text rendering for human output: aligned tables, `key: value` blocks, sizes and durations. */

/** A cell as printed: null and undefined print as `-`. */
export function cell(v: unknown): string {
  if (v === null || v === undefined || v === '') return '-';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Columns aligned on the widest cell; the header is upper-cased. Trailing spaces are trimmed. */
export function table(headers: readonly string[], rows: readonly (readonly unknown[])[]): string[] {
  const text = rows.map((r) => headers.map((_, i) => cell(r[i])));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...text.map(line)];
}

/** `key: value` lines, keys aligned; nested objects are flattened to dotted keys. */
export function keyValues(obj: Record<string, unknown>): string[] {
  const pairs: Array<[string, string]> = [];
  const walk = (prefix: string, v: unknown) => {
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length > 0) {
      for (const [k, x] of Object.entries(v)) walk(prefix === '' ? k : `${prefix}.${k}`, x);
    } else {
      pairs.push([prefix, Array.isArray(v) ? v.map(cell).join(', ') : cell(v)]);
    }
  };
  walk('', obj);
  const width = Math.max(0, ...pairs.map(([k]) => k.length + 1));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}`);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `12.3 MiB`; non-numbers print as `-`. */
export function bytes(n: unknown): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '-';
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** `37 ms`, `2.5 s`; non-numbers print as `-`. */
export function millis(n: unknown): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '-';
  return n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(1)} s`;
}

/** The first of `keys` that `obj` has (servers may name a field one of several ways). */
export function pick(obj: Record<string, unknown>, ...keys: string[]): unknown {
  for (const k of keys) if (obj[k] !== undefined) return obj[k];
  return undefined;
}

/** `1 thing` / `2 things`. */
export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}
