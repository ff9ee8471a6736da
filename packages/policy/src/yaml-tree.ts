import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';

/** One step of a key path: a mapping key or a list index. */
export type Segment = string | number;

/** A problem before it is placed on a line: an offset into the text. */
export interface RawProblem {
  offset: number;
  path: readonly Segment[];
  message: string;
}

/** A YAML text turned into plain data, with where every key path sits in the text. */
export interface YamlTree {
  /** Plain data; mappings are prototype-less objects so names like `constructor` are just names. Undefined when the text is not YAML. */
  readonly data: unknown;
  /** Syntax errors, duplicate keys and unusable keys. */
  readonly problems: RawProblem[];
  /** Offset of the first character of the entry at a path (the key of a mapping entry, the item of a list). */
  offsetOf(path: readonly Segment[]): number;
  /** Keys of the mapping at a path in file order (JS objects put integer-like keys first). */
  keysAt(path: readonly Segment[]): string[];
  /** 1-based line and column of an offset. */
  linePos(offset: number): { line: number; column: number };
}

// Aliases may expand a small text into a huge tree; a policy needs few of them.
const MAX_ALIAS_EXPANSIONS = 1000;
const MAX_DEPTH = 64;

/** Stable map key of a path. */
export function pathKey(path: readonly Segment[]): string {
  return JSON.stringify(path.map(String));
}

/**
 * Parse YAML keeping positions. The tree is built here rather than with
 * `toJS()` so that duplicate keys are reported with their path, plain keys keep
 * their text (`007` stays "007", not 7), and key order is the file's order.
 */
export function readYaml(text: string): YamlTree {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false });
  const problems: RawProblem[] = [];
  const offsets = new Map<string, number>();
  const keyOrders = new Map<string, string[]>();
  const keysAt = (path: readonly Segment[]): string[] => [...(keyOrders.get(pathKey(path)) ?? [])];
  const linePos = (offset: number): { line: number; column: number } => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, column: p.col };
  };
  const offsetOf = (path: readonly Segment[]): number => {
    for (let n = path.length; n >= 0; n--) {
      const o = offsets.get(pathKey(path.slice(0, n)));
      if (o !== undefined) return o;
    }
    return 0;
  };

  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const message = e.code === 'MULTIPLE_DOCS' ? 'a policy file holds one YAML document; found more than one' : e.message;
      problems.push({ offset: e.pos[0], path: [], message: `not valid YAML: ${message}` });
    }
    return { data: undefined, problems, offsetOf, keysAt, linePos };
  }
  const root = doc.contents;
  offsets.set(pathKey([]), root?.range?.[0] ?? 0);
  const state = { aliases: 0 };
  const data = toData(root ?? null, [], 0, false);
  return { data, problems, offsetOf, keysAt, linePos };

  function toData(node: unknown, path: Segment[], depth: number, viaAlias: boolean): unknown {
    if (node === null || node === undefined) return null;
    if (depth > MAX_DEPTH) {
      problems.push({ offset: offsetOf(path), path, message: `nested deeper than ${MAX_DEPTH} levels` });
      return null;
    }
    if (isAlias(node)) {
      if (++state.aliases > MAX_ALIAS_EXPANSIONS) {
        if (state.aliases === MAX_ALIAS_EXPANSIONS + 1) {
          problems.push({ offset: offsetOf(path), path, message: `more than ${MAX_ALIAS_EXPANSIONS} alias expansions` });
        }
        return null;
      }
      return toData(node.resolve(doc as Document), path, depth + 1, true);
    }
    if (isScalar(node)) return node.value;
    if (isSeq(node)) {
      return node.items.map((item, i) => {
        const childPath = [...path, i];
        if (!viaAlias) offsets.set(pathKey(childPath), (item as YamlNode | null)?.range?.[0] ?? offsetOf(path));
        return toData(item, childPath, depth + 1, viaAlias);
      });
    }
    if (isMap(node)) {
      const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
      const firstAt = new Map<string, number>();
      if (!viaAlias) keyOrders.set(pathKey(path), [...firstAt.keys()]);
      for (const pair of node.items) {
        const keyNode = pair.key as YamlNode | null;
        const valueNode = pair.value as YamlNode | null;
        const at = keyNode?.range?.[0] ?? valueNode?.range?.[0] ?? offsetOf(path);
        const key = keyText(keyNode);
        if (key === undefined) {
          if (!viaAlias) problems.push({ offset: at, path, message: 'keys must be plain names, not lists, mappings or empty' });
          continue;
        }
        const childPath = [...path, key];
        const first = firstAt.get(key);
        if (first !== undefined) {
          if (!viaAlias) {
            problems.push({ offset: at, path: childPath, message: `duplicate key "${key}" (first defined on line ${linePos(first).line})` });
          }
          continue;
        }
        firstAt.set(key, at);
        if (!viaAlias) keyOrders.get(pathKey(path))?.push(key);
        if (!viaAlias) offsets.set(pathKey(childPath), at);
        out[key] = toData(valueNode, childPath, depth + 1, viaAlias);
      }
      return out;
    }
    return null;
  }
}

function keyText(node: YamlNode | null): string | undefined {
  if (!isScalar(node)) return undefined;
  if (typeof node.value === 'string') return node.value;
  if (node.value === null && (node.source === undefined || node.source === '')) return undefined;
  return node.source ?? String(node.value);
}
