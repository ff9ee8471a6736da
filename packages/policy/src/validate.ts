import { Ajv, type ErrorObject } from 'ajv';
import { NAME_PATTERN, TENANT_ID_PATTERN, isValidName, isValidTenantId } from './names.ts';
import { POLICY_SCHEMA } from './schema.ts';
import type { Segment, YamlTree } from './yaml-tree.ts';

/** A problem with its key path and the path whose text position it points at. */
export interface Finding {
  /** Key path the message is about. */
  readonly path: readonly Segment[];
  /** Path to point at in the file (differs from `path` for a missing key: the mapping that lacks it). */
  readonly at: readonly Segment[];
  readonly message: string;
}

// Compiled once at import: a broken schema fails at boot, not at first use.
const ajv = new Ajv({ allErrors: true, verbose: true, allowUnionTypes: true, strict: true });
ajv.addVocabulary(['x-expected', 'x-empty']);
const validateShape = ajv.compile(POLICY_SCHEMA as object);

type Dict = Record<string, unknown>;

function isDict(v: unknown): v is Dict {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Keys of the mapping at `path` in file order; falls back to object order for content reached through an alias. */
export function orderedKeys(tree: YamlTree, path: readonly Segment[], obj: Dict): string[] {
  const own = Object.keys(obj);
  const inFile = tree.keysAt(path);
  return inFile.length === own.length ? inFile : own;
}

/** `residencies.eu.regions[1]`; keys that are not plain names are quoted: `regions["EU West"]`. */
export function formatPath(path: readonly Segment[]): string {
  let out = '';
  for (const s of path) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(s)) out += out === '' ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

/** Every structural and semantic problem of parsed policy data; empty when the policy is valid. */
export function validatePolicyData(tree: YamlTree): Finding[] {
  const data = tree.data;
  if (data === null || data === undefined) {
    return [{ path: [], at: [], message: 'the policy is empty; it needs version, regions and residencies' }];
  }
  if (!isDict(data)) {
    return [{ path: [], at: [], message: `the policy must be a mapping with version, regions and residencies, got ${describe(data)}` }];
  }
  const findings: Finding[] = [];
  if (!validateShape(data)) {
    for (const e of validateShape.errors ?? []) findings.push(fromAjv(e, data));
  }
  findings.push(...checkReferences(tree, data));
  return findings;
}

function fromAjv(e: ErrorObject, data: unknown): Finding {
  const path = pointerToPath(e.instancePath, data);
  const schema = (e.parentSchema ?? {}) as Dict;
  const expected = typeof schema['x-expected'] === 'string' ? schema['x-expected'] : String(schema.type);
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String((e.params as { additionalProperty: string }).additionalProperty);
      const allowed = Object.keys((schema.properties ?? {}) as Dict);
      const near = nearest(key, allowed);
      const hint = near !== undefined ? `did you mean "${near}"?` : `allowed keys: ${allowed.join(', ')}`;
      return { path: [...path, key], at: [...path, key], message: `unknown key "${key}"; ${hint}` };
    }
    case 'required': {
      const key = String((e.params as { missingProperty: string }).missingProperty);
      return { path: [...path, key], at: path, message: `missing required key "${key}"` };
    }
    case 'type': {
      const quote = typeof e.data === 'number' && schema.type === 'string' ? ' (quote it to make it a string)' : '';
      return { path, at: path, message: `must be ${expected}, got ${describe(e.data)}${quote}` };
    }
    case 'const':
      return { path, at: path, message: `unsupported version ${JSON.stringify(e.data)}; only version 1 exists` };
    case 'enum': {
      const values = (e.params as { allowedValues: unknown[] }).allowedValues.map(String);
      return { path, at: path, message: `${JSON.stringify(e.data)} is not one of ${values.join(', ')}` };
    }
    case 'minItems':
    case 'minProperties':
    case 'minLength':
      return { path, at: path, message: typeof schema['x-empty'] === 'string' ? schema['x-empty'] : 'must not be empty' };
    default:
      return { path, at: path, message: e.message ?? `fails ${e.keyword}` };
  }
}

// Names and cross-references: what the schema cannot say. Runs on whatever
// shape the data has, so every problem is reported in one pass.
function checkReferences(tree: YamlTree, root: Dict): Finding[] {
  const out: Finding[] = [];
  const regions = isDict(root.regions) ? root.regions : {};
  const regionNames = orderedKeys(tree, ['regions'], regions);
  const isRegion = (r: string): boolean => Object.hasOwn(regions, r);
  for (const name of regionNames) {
    if (!isValidName(name)) {
      out.push({ path: ['regions', name], at: ['regions', name], message: `region name "${name}" must match ${NAME_PATTERN.source}` });
    }
  }

  const residencies = isDict(root.residencies) ? root.residencies : {};
  // Regions each residency allows, for the pin checks below; absent when its list is unusable.
  const allowed = new Map<string, string[]>();
  for (const name of orderedKeys(tree, ['residencies'], residencies)) {
    const base = ['residencies', name];
    if (!isValidName(name)) out.push({ path: base, at: base, message: `residency name "${name}" must match ${NAME_PATTERN.source}` });
    const rule = residencies[name];
    if (!isDict(rule)) continue;
    const listPath = [...base, 'regions'];
    let listed: string[] | undefined;
    if (typeof rule.regions === 'string') {
      if (rule.regions === '*') listed = regionNames;
      else out.push({ path: listPath, at: listPath, message: `must be a list of region names or "*" (every region), got "${rule.regions}"` });
    } else if (Array.isArray(rule.regions)) {
      listed = [];
      rule.regions.forEach((r: unknown, i) => {
        if (typeof r !== 'string') return;
        const at = [...listPath, i];
        if (!isRegion(r)) out.push({ path: at, at, message: `unknown region "${r}"; defined regions: ${regionNames.join(', ') || '(none)'}` });
        else if (listed!.includes(r)) out.push({ path: at, at, message: `region "${r}" is listed twice` });
        if (!listed!.includes(r)) listed!.push(r);
      });
    }
    if (listed !== undefined) allowed.set(name, listed);
    if (listed !== undefined && listed.length > 0 && typeof rule.default === 'string' && !listed.includes(rule.default)) {
      const at = [...base, 'default'];
      out.push({ path: at, at, message: `"${rule.default}" is not one of the regions of residency "${name}" (${listed.join(', ')})` });
    }
  }

  const tenants = isDict(root.tenants) ? root.tenants : {};
  const residencyNames = orderedKeys(tree, ['residencies'], residencies);
  for (const id of orderedKeys(tree, ['tenants'], tenants)) {
    const base = ['tenants', id];
    if (!isValidTenantId(id)) out.push({ path: base, at: base, message: `tenant id "${id}" must match ${TENANT_ID_PATTERN.source}` });
    const t = tenants[id];
    if (!isDict(t)) continue;
    const residency = typeof t.residency === 'string' ? t.residency : undefined;
    if (residency !== undefined && !Object.hasOwn(residencies, residency)) {
      const at = [...base, 'residency'];
      out.push({ path: at, at, message: `unknown residency "${residency}"; defined residencies: ${residencyNames.join(', ') || '(none)'}` });
    }
    if (typeof t.pin === 'string') {
      const at = [...base, 'pin'];
      const list = residency === undefined ? undefined : allowed.get(residency);
      if (!isRegion(t.pin)) out.push({ path: at, at, message: `unknown region "${t.pin}"; defined regions: ${regionNames.join(', ') || '(none)'}` });
      else if (list !== undefined && !list.includes(t.pin)) {
        out.push({ path: at, at, message: `"${t.pin}" is not one of the regions of residency "${residency}" (${list.join(', ')})` });
      }
    }
  }
  return out;
}

function pointerToPath(pointer: string, data: unknown): Segment[] {
  if (pointer === '') return [];
  const out: Segment[] = [];
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) {
      const i = Number(seg);
      out.push(i);
      cur = cur[i];
    } else {
      out.push(seg);
      cur = isDict(cur) ? cur[seg] : undefined;
    }
  }
  return out;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return `${typeof v === 'boolean' ? 'the boolean' : 'the number'} ${String(v)}`;
}

// A typo suggestion: the allowed key within edit distance 2 (case-insensitive), if any.
function nearest(key: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const c of candidates) {
    const d = editDistance(key.toLowerCase(), c.toLowerCase());
    if (d < bestD) { best = c; bestD = d; }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
