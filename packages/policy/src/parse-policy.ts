import { readFile } from 'node:fs/promises';
import { hashOf } from './canonical-json.ts';
import { PolicyError } from './policy-error.ts';
import type { Policy, PolicyProblem, RegionRule, ResidencyRule, TenantPin, Transit } from './types.ts';
import { formatPath, orderedKeys, validatePolicyData } from './validate.ts';
import { readYaml, type YamlTree } from './yaml-tree.ts';

/**
 * Parse, validate and normalize a policy file's text. Pure: `fileName` only
 * names the file in messages. Throws one PolicyError listing every problem.
 */
export function parsePolicy(text: string, fileName: string): Policy {
  const tree = readYaml(text);
  const problems: PolicyProblem[] = tree.problems.map((p) => ({ ...tree.linePos(p.offset), path: formatPath(p.path), message: p.message }));
  if (tree.data !== undefined) {
    for (const f of validatePolicyData(tree)) {
      problems.push({ ...tree.linePos(tree.offsetOf(f.at)), path: formatPath(f.path), message: f.message });
    }
  }
  if (problems.length > 0) throw new PolicyError(fileName, sortUnique(problems));
  return normalize(tree, fileName);
}

/** Read and parse a policy file; an unreadable file is a PolicyError too (line 0). */
export async function loadPolicy(path: string): Promise<Policy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    const reason = (cause as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (cause as Error).message;
    throw new PolicyError(path, [{ line: 0, column: 0, path: '', message: `cannot read the policy file: ${reason}` }], { cause });
  }
  return parsePolicy(text, path);
}

function sortUnique(problems: PolicyProblem[]): PolicyProblem[] {
  const seen = new Set<string>();
  return problems
    .filter((p) => {
      const k = `${p.line}:${p.column}:${p.path}:${p.message}`;
      return seen.has(k) ? false : (seen.add(k), true);
    })
    .sort((a, b) => a.line - b.line || a.column - b.column);
}

type Raw = Record<string, any>;

// Only called on data that passed validation, so the shapes are known.
function normalize(tree: YamlTree, source: string): Policy {
  const raw = tree.data as Raw;
  const regionOrder = orderedKeys(tree, ['regions'], raw.regions as Raw);
  const regions = dict<RegionRule>();
  for (const name of regionOrder) regions[name] = { jurisdiction: raw.regions[name].jurisdiction as string };

  const residencies = dict<ResidencyRule>();
  for (const name of orderedKeys(tree, ['residencies'], raw.residencies as Raw)) {
    const r = raw.residencies[name] as Raw;
    const list: string[] = r.regions === '*' ? [...regionOrder] : [...(r.regions as string[])];
    residencies[name] = {
      regions: list,
      default: (r.default as string | undefined) ?? list[0]!,
      transit: (r.transit as Transit | undefined) ?? 'proxy',
      backups: 'same-region',
      purgeAfterMove: (r.purgeAfterMove as boolean | undefined) ?? true,
    };
  }

  const tenants = dict<TenantPin>();
  const rawTenants = (raw.tenants ?? {}) as Raw;
  for (const id of orderedKeys(tree, ['tenants'], rawTenants)) {
    const t = rawTenants[id] as Raw;
    tenants[id] = t.pin === undefined ? { residency: t.residency as string } : { residency: t.residency as string, pin: t.pin as string };
  }

  const body = { version: 1 as const, regions, residencies, tenants };
  return deepFreeze({ ...body, regionOrder, hash: hashOf(body), source });
}

// Prototype-less, so a name such as "constructor" or "toString" is only ever a name.
function dict<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
