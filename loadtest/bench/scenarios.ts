/**
 * The scenario file (loadtest/scenarios.json) read, validated and frozen for
 * the Node harness; the k6 scripts read the same file with open().
 */
import { readFileSync } from 'node:fs';

/** One request kind: the SQLite statement Domicile runs and the same statement for the Postgres peer. */
export interface Operation {
  readonly sql: string;
  /** Positional values; "$seq" is a per-run counter, "$now" the current time in ms. */
  readonly params: readonly (string | number)[];
  /** The Postgres form; $1 is the tenant, $2... are `params`. */
  readonly postgres: string;
}

/** One load scenario as the file states it (before --tiny / flag overrides). */
export interface Scenario {
  readonly name: string;
  readonly description: string;
  readonly tenants: number;
  readonly connections: number;
  readonly durationSeconds: number;
  /** Fractions of writes and reads; they sum to 1. */
  readonly mix: { readonly write: number; readonly read: number };
  readonly thresholds: { readonly maxErrorRate: number; readonly p99Ms: number };
}

/** The whole scenario file. */
export interface ScenarioFile {
  readonly residency: string;
  readonly tenantPrefix: string;
  readonly schema: readonly string[];
  readonly postgresSchema: readonly string[];
  readonly operations: { readonly write: Operation; readonly read: Operation };
  readonly scenarios: Readonly<Record<string, Scenario>>;
  readonly tiny: { readonly tenants: number; readonly connections: number; readonly durationSeconds: number };
}

/** Where the shared file lives. */
export const SCENARIO_FILE = new URL('../scenarios.json', import.meta.url);

function fail(key: string, why: string): never {
  throw new Error(`${SCENARIO_FILE.pathname}: ${key} ${why}`);
}
function posInt(v: unknown, key: string, max: number): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > max) fail(key, `must be an integer in 1..${max}`);
  return v as number;
}
function posNum(v: unknown, key: string, max: number): number {
  if (typeof v !== 'number' || !(v > 0) || v > max) fail(key, `must be a number in (0, ${max}]`);
  return v;
}
function str(v: unknown, key: string): string {
  if (typeof v !== 'string' || v.length === 0) fail(key, 'must be a non-empty string');
  return v;
}
function op(v: any, key: string): Operation {
  if (!v || typeof v !== 'object') fail(key, 'must be an object');
  const params = v.params;
  if (!Array.isArray(params) || params.some((p) => typeof p !== 'string' && typeof p !== 'number')) fail(`${key}.params`, 'must be an array of strings and numbers');
  return Object.freeze({ sql: str(v.sql, `${key}.sql`), params: Object.freeze([...params]), postgres: str(v.postgres, `${key}.postgres`) });
}

/** Parses and validates the scenario file's text; messages name the bad key. */
export function parseScenarioFile(text: string): ScenarioFile {
  const raw = JSON.parse(text) as any;
  const scenarios: Record<string, Scenario> = {};
  for (const [name, s] of Object.entries<any>(raw.scenarios ?? fail('scenarios', 'is missing'))) {
    const k = `scenarios.${name}`;
    if (!/^[a-z0-9-]+$/.test(name)) fail(k, 'name must match ^[a-z0-9-]+$');
    const write = s.mix?.write, read = s.mix?.read;
    if (typeof write !== 'number' || typeof read !== 'number' || write < 0 || read < 0 || Math.abs(write + read - 1) > 1e-9) fail(`${k}.mix`, 'must be {write, read} fractions summing to 1');
    const maxErrorRate = s.thresholds?.maxErrorRate;
    if (typeof maxErrorRate !== 'number' || maxErrorRate < 0 || maxErrorRate > 1) fail(`${k}.thresholds.maxErrorRate`, 'must be a number in 0..1');
    scenarios[name] = Object.freeze({
      name,
      description: str(s.description, `${k}.description`),
      tenants: posInt(s.tenants, `${k}.tenants`, 100_000),
      connections: posInt(s.connections, `${k}.connections`, 1024),
      durationSeconds: posNum(s.durationSeconds, `${k}.durationSeconds`, 600),
      mix: Object.freeze({ write, read }),
      thresholds: Object.freeze({ maxErrorRate, p99Ms: posNum(s.thresholds?.p99Ms, `${k}.thresholds.p99Ms`, 60_000) }),
    });
  }
  if (!Array.isArray(raw.schema) || !Array.isArray(raw.postgresSchema)) fail('schema / postgresSchema', 'must be arrays of SQL strings');
  return Object.freeze({
    residency: str(raw.residency, 'residency'),
    tenantPrefix: str(raw.tenantPrefix, 'tenantPrefix'),
    schema: Object.freeze(raw.schema.map((s: unknown, i: number) => str(s, `schema[${i}]`))),
    postgresSchema: Object.freeze(raw.postgresSchema.map((s: unknown, i: number) => str(s, `postgresSchema[${i}]`))),
    operations: Object.freeze({ write: op(raw.operations?.write, 'operations.write'), read: op(raw.operations?.read, 'operations.read') }),
    scenarios: Object.freeze(scenarios),
    tiny: Object.freeze({
      tenants: posInt(raw.tiny?.tenants, 'tiny.tenants', 100_000),
      connections: posInt(raw.tiny?.connections, 'tiny.connections', 1024),
      durationSeconds: posNum(raw.tiny?.durationSeconds, 'tiny.durationSeconds', 600),
    }),
  });
}

/** Reads loadtest/scenarios.json. */
export function loadScenarioFile(): ScenarioFile {
  return parseScenarioFile(readFileSync(SCENARIO_FILE, 'utf8'));
}

/** Tenant ids of a run: prefix + zero-padded index (the k6 scripts build the same ids). */
export function tenantIds(file: ScenarioFile, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${file.tenantPrefix}${String(i).padStart(5, '0')}`);
}

/** One request of a scenario: which tenant, which operation, which values. */
export interface Pick {
  readonly tenant: string;
  readonly kind: 'write' | 'read';
  readonly op: Operation;
  readonly params: (string | number)[];
}

/**
 * The request stream of a scenario. Writes are spread evenly by a counter (every
 * 5th request in an 80/20 mix), tenants uniformly at random; the k6 scripts do the same.
 */
export function requestStream(file: ScenarioFile, mix: Scenario['mix'], tenants: readonly string[]): () => Pick {
  let seq = 0;
  return () => {
    const i = seq++;
    const kind = Math.floor((i + 1) * mix.write) > Math.floor(i * mix.write) ? 'write' : 'read';
    const op = file.operations[kind];
    const tenant = tenants[Math.floor(Math.random() * tenants.length)]!;
    const params = op.params.map((p) => (p === '$seq' ? i : p === '$now' ? Date.now() : p));
    return { tenant, kind, op, params };
  };
}
