import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { DomicileError } from '@domicile/errors';

/** Durability of a tenant's writes (DESIGN §8). */
export type Durability = 'async' | 'sync';

/** The node's whole configuration, after defaults, parsing and validation. Frozen. */
export interface Config {
  host: string;
  port: number;
  dataDir: string;
  policyPath: string;
  /** Named admin tokens: name → token. A single `DOMICILE_ADMIN_TOKEN` is named `admin`. Empty: generate (embedded only). */
  adminTokens: ReadonlyMap<string, string>;
  /** Tenant-token signing keys, in order: the first signs, all verify. Empty: generate (embedded only). */
  tokenSecrets: ReadonlyArray<{ kid: string; secret: string }>;
  clusterSecret: string | undefined;
  /** Set for a one-region node; undefined on the embedded default (every region). */
  region: string | undefined;
  nodeId: string | undefined;
  redisUrl: string | undefined;
  /** `region=url,...` as given; resolved against the policy's regions later. */
  buckets: string | undefined;
  publicUrl: string | undefined;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  workers: number;
  maxOpenShards: number;
  statementTimeoutMs: number;
  /** Idle time after which an interactive (Hrana) transaction is rolled back and its tenant released. */
  sessionIdleTimeoutMs: number;
  maxResultBytes: number;
  maxBodyBytes: number;
  maxDbBytes: number;
  durability: Durability;
  snapshotIntervalMs: number;
  /** DOMICILE_SHIP_INTERVAL: least time between two uploads of one async tenant's WAL. */
  shipIntervalMs: number;
  /** DOMICILE_CHECKPOINT_BYTES: a tenant's shipped WAL is checkpointed once this large, when no write comes between (the tenant is not held). */
  checkpointBytes: number;
  /** DOMICILE_CHECKPOINT_FORCE_BYTES: past this, the tenant is held for the checkpoint (steady writes cannot starve it); default 8 × DOMICILE_CHECKPOINT_BYTES (32 MiB). */
  checkpointForceBytes: number;
  /** DOMICILE_SHIP_CONCURRENCY: tenants whose WAL is being shipped at once (their uploads overlap). */
  shipConcurrency: number;
  retentionMs: number;
  leaseTtlMs: number;
  /** DOMICILE_FAILOVER_SWEEP_MS: how often a cluster node re-checks its region for tenants of dead nodes. */
  failoverSweepMs: number;
  replication: 'on' | 'off';
  /** DOMICILE_TOKEN_CACHE: verified tenant tokens remembered (0: verify every request). */
  tokenCache: number;
  logLevel: string;
  /** Where each value came from, for `serve` start-up logs. */
  sources: Readonly<Record<string, 'default' | 'env' | 'file'>>;
}

/** One configuration variable: its name, default and parser. */
interface Variable<K extends keyof Config> {
  key: K;
  env: string;
  parse: (raw: string, name: string) => Config[K];
  default: (partial: Partial<Config>) => Config[K];
}

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

/** Parses `16MiB`, `10 MB`, `1GiB`, `1048576`. */
export function parseBytes(raw: string, name: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)?\s*$/i.exec(raw);
  if (!m) throw bad(name, raw, 'a size such as 16MiB, 512KiB or 1048576');
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult = unit.startsWith('k') ? KIB : unit.startsWith('m') ? MIB : unit.startsWith('g') ? GIB : unit.startsWith('t') ? 1024 * GIB : 1;
  const n = Math.floor(Number(m[1]) * mult);
  if (!Number.isSafeInteger(n) || n <= 0) throw bad(name, raw, 'a positive size');
  return n;
}

/** Parses `500ms`, `5s`, `1h`, `7d`, `1500` (milliseconds). */
export function parseDuration(raw: string, name: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(raw);
  if (!m) throw bad(name, raw, 'a duration such as 500ms, 30s, 1h or 7d');
  const unit = (m[2] ?? 'ms').toLowerCase();
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit] ?? 1;
  const n = Math.round(Number(m[1]) * mult);
  if (!Number.isSafeInteger(n) || n <= 0) throw bad(name, raw, 'a positive duration');
  return n;
}

function parseInteger(min: number, max: number) {
  return (raw: string, name: string): number => {
    if (!/^\s*\d+\s*$/.test(raw)) throw bad(name, raw, `an integer from ${min} to ${max}`);
    const n = Number(raw);
    if (n < min || n > max) throw bad(name, raw, `an integer from ${min} to ${max}`);
    return n;
  };
}

function parseEnum<T extends string>(...values: T[]) {
  return (raw: string, name: string): T => {
    const v = raw.trim() as T;
    if (!values.includes(v)) throw bad(name, raw, `one of ${values.join(', ')}`);
    return v;
  };
}

const str = (raw: string): string => raw.trim();
const optStr = (raw: string): string | undefined => (raw.trim() === '' ? undefined : raw.trim());

function parseAdminTokens(raw: string, name: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const i = part.indexOf(':');
    if (i <= 0 || i === part.length - 1) throw bad(name, '<redacted>', 'a list of name:token pairs');
    const tokenName = part.slice(0, i);
    const token = part.slice(i + 1);
    if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(tokenName)) throw bad(name, tokenName, 'token names of letters, digits, _ . @ -');
    if (token.length < 16) throw bad(name, `${tokenName}:<redacted>`, 'tokens of at least 16 characters');
    if (out.has(tokenName)) throw bad(name, tokenName, 'distinct token names');
    out.set(tokenName, token);
  }
  return out;
}

function parseSecrets(raw: string, name: string): Array<{ kid: string; secret: string }> {
  const out: Array<{ kid: string; secret: string }> = [];
  for (const part of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const i = part.indexOf(':');
    if (i <= 0) throw bad(name, '<redacted>', 'a list of kid:secret pairs');
    const kid = part.slice(0, i);
    const secret = part.slice(i + 1);
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(kid)) throw bad(name, kid, 'key ids of letters, digits, _ . -');
    if (secret.length < 32) throw bad(name, `${kid}:<redacted>`, 'secrets of at least 32 characters (HS256 wants 256 bits)');
    if (out.some((s) => s.kid === kid)) throw bad(name, kid, 'distinct key ids');
    out.push({ kid, secret });
  }
  return out;
}

function bad(name: string, raw: string, expected: string): DomicileError {
  return new DomicileError('BAD_REQUEST', `${name}: "${raw}" is not valid; expected ${expected}`, { key: name });
}

/**
 * Sized to the fd soft limit: each open shard holds up to three descriptors (db, -wal, -shm),
 * and half the limit is left for sockets and everything else.
 */
export function maxOpenShardsForFdLimit(fdLimit: number | undefined): number {
  return Math.max(64, Math.floor((fdLimit ?? 1024) / 2 / 3));
}

/** Reads the soft "Max open files" limit from /proc (Linux); undefined elsewhere. */
function fdSoftLimit(): number | undefined {
  try {
    const m = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

const VARIABLES: ReadonlyArray<Variable<keyof Config>> = [
  { key: 'host', env: 'DOMICILE_HOST', parse: str, default: () => '127.0.0.1' },
  { key: 'port', env: 'DOMICILE_PORT', parse: parseInteger(0, 65535), default: () => 8080 },
  { key: 'dataDir', env: 'DOMICILE_DATA_DIR', parse: (r) => path.resolve(r.trim()), default: () => path.resolve('data') },
  { key: 'policyPath', env: 'DOMICILE_POLICY', parse: (r) => path.resolve(r.trim()), default: () => path.resolve('config/placement.yaml') },
  { key: 'adminTokens', env: 'DOMICILE_ADMIN_TOKENS', parse: parseAdminTokens, default: () => new Map() },
  { key: 'tokenSecrets', env: 'DOMICILE_TOKEN_SECRET', parse: parseSecrets, default: () => [] },
  { key: 'clusterSecret', env: 'DOMICILE_CLUSTER_SECRET', parse: optStr, default: () => undefined },
  { key: 'region', env: 'DOMICILE_REGION', parse: optStr, default: () => undefined },
  { key: 'nodeId', env: 'DOMICILE_NODE_ID', parse: optStr, default: () => undefined },
  { key: 'redisUrl', env: 'DOMICILE_REDIS_URL', parse: optStr, default: () => undefined },
  { key: 'buckets', env: 'DOMICILE_BUCKETS', parse: optStr, default: () => undefined },
  { key: 'publicUrl', env: 'DOMICILE_PUBLIC_URL', parse: optStr, default: () => undefined },
  { key: 'tlsCert', env: 'DOMICILE_TLS_CERT', parse: optStr, default: () => undefined },
  { key: 'tlsKey', env: 'DOMICILE_TLS_KEY', parse: optStr, default: () => undefined },
  { key: 'workers', env: 'DOMICILE_WORKERS', parse: parseInteger(1, 256), default: () => availableParallelism() },
  { key: 'maxOpenShards', env: 'DOMICILE_MAX_OPEN_SHARDS', parse: parseInteger(1, 10_000_000), default: () => maxOpenShardsForFdLimit(fdSoftLimit()) },
  { key: 'statementTimeoutMs', env: 'DOMICILE_STATEMENT_TIMEOUT_MS', parse: parseInteger(1, 86_400_000), default: () => 5000 },
  { key: 'sessionIdleTimeoutMs', env: 'DOMICILE_SESSION_IDLE_TIMEOUT_MS', parse: parseInteger(1, 3_600_000), default: () => 10_000 },
  { key: 'maxResultBytes', env: 'DOMICILE_MAX_RESULT_BYTES', parse: parseBytes, default: () => 16 * MIB },
  { key: 'maxBodyBytes', env: 'DOMICILE_MAX_BODY_BYTES', parse: parseBytes, default: () => 10 * MIB },
  { key: 'maxDbBytes', env: 'DOMICILE_MAX_DB_BYTES', parse: parseBytes, default: () => 1 * GIB },
  { key: 'durability', env: 'DOMICILE_DURABILITY', parse: parseEnum<Durability>('async', 'sync'), default: () => 'async' },
  { key: 'snapshotIntervalMs', env: 'DOMICILE_SNAPSHOT_INTERVAL', parse: parseDuration, default: () => 3_600_000 },
  { key: 'shipIntervalMs', env: 'DOMICILE_SHIP_INTERVAL', parse: parseDuration, default: () => 500 },
  { key: 'checkpointBytes', env: 'DOMICILE_CHECKPOINT_BYTES', parse: parseBytes, default: () => 4 * MIB },
  { key: 'checkpointForceBytes', env: 'DOMICILE_CHECKPOINT_FORCE_BYTES', parse: parseBytes, default: (c) => 8 * (c.checkpointBytes ?? 4 * MIB) },
  { key: 'shipConcurrency', env: 'DOMICILE_SHIP_CONCURRENCY', parse: parseInteger(1, 1024), default: () => 8 },
  { key: 'retentionMs', env: 'DOMICILE_RETENTION', parse: parseDuration, default: () => 7 * 86_400_000 },
  { key: 'leaseTtlMs', env: 'DOMICILE_LEASE_TTL_MS', parse: parseInteger(500, 600_000), default: () => 5000 },
  { key: 'failoverSweepMs', env: 'DOMICILE_FAILOVER_SWEEP_MS', parse: parseInteger(1000, 3_600_000), default: () => 30_000 },
  { key: 'replication', env: 'DOMICILE_REPLICATION', parse: parseEnum<'on' | 'off'>('on', 'off'), default: () => 'on' },
  { key: 'tokenCache', env: 'DOMICILE_TOKEN_CACHE', parse: parseInteger(0, 10_000_000), default: () => 10_000 },
  { key: 'logLevel', env: 'DOMICILE_LOG_LEVEL', parse: parseEnum('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'), default: () => 'info' },
];

/** Every variable name the configuration understands (for docs and the config-file check). */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze([
  ...VARIABLES.map((v) => v.env),
  'DOMICILE_ADMIN_TOKEN',
  'DOMICILE_CONFIG',
]);

/**
 * Builds the configuration from variables: `file` (keys from a config file) under `env`
 * (the environment wins). Pure: no I/O. Throws a BAD_REQUEST DomicileError naming the key.
 */
export function parseConfig(env: Readonly<Record<string, string | undefined>>, file: Readonly<Record<string, string>> = {}): Config {
  const sources: Record<string, 'default' | 'env' | 'file'> = {};
  const out: Partial<Record<keyof Config, unknown>> = {};
  const errors: string[] = [];
  for (const name of Object.keys(file)) {
    if (!CONFIG_VARIABLES.includes(name)) errors.push(`${name}: unknown configuration key`);
  }
  const lookup = (name: string): { raw: string; from: 'env' | 'file' } | undefined => {
    const e = env[name];
    if (e !== undefined && e !== '') return { raw: e, from: 'env' };
    const f = file[name];
    if (f !== undefined && f !== '') return { raw: f, from: 'file' };
    return undefined;
  };
  for (const v of VARIABLES) {
    const got = lookup(v.env);
    try {
      if (got) {
        out[v.key] = v.parse(got.raw, v.env);
        sources[v.key] = got.from;
      } else {
        out[v.key] = v.default(out as Partial<Config>);
        sources[v.key] = 'default';
      }
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  // DOMICILE_ADMIN_TOKEN is the one-token form; it joins the named list as "admin".
  const single = lookup('DOMICILE_ADMIN_TOKEN');
  if (single) {
    const tokens = new Map(out.adminTokens as Map<string, string>);
    if (single.raw.trim().length < 16) errors.push('DOMICILE_ADMIN_TOKEN: tokens need at least 16 characters');
    else if (tokens.has('admin')) errors.push('DOMICILE_ADMIN_TOKEN: conflicts with the token named "admin" in DOMICILE_ADMIN_TOKENS');
    else tokens.set('admin', single.raw.trim());
    out.adminTokens = tokens;
    sources.adminTokens = single.from;
  }
  const c = out as Config;
  if (errors.length === 0) {
    if (c.redisUrl && !c.region) errors.push('DOMICILE_REDIS_URL is set but DOMICILE_REGION is not: a cluster node must name its region');
    if (c.redisUrl && !/^rediss?:\/\//.test(c.redisUrl)) errors.push('DOMICILE_REDIS_URL: expected redis:// or rediss://');
    if ((c.tlsCert === undefined) !== (c.tlsKey === undefined)) errors.push('DOMICILE_TLS_CERT and DOMICILE_TLS_KEY must be set together');
    if (c.redisUrl) {
      if (c.adminTokens.size === 0) errors.push('DOMICILE_ADMIN_TOKEN or DOMICILE_ADMIN_TOKENS is required in a cluster');
      if (c.tokenSecrets.length === 0) errors.push('DOMICILE_TOKEN_SECRET is required in a cluster');
      if (!c.clusterSecret) errors.push('DOMICILE_CLUSTER_SECRET is required in a cluster');
    }
    if (c.checkpointForceBytes < c.checkpointBytes) errors.push(`DOMICILE_CHECKPOINT_FORCE_BYTES (${c.checkpointForceBytes}) must be at least DOMICILE_CHECKPOINT_BYTES (${c.checkpointBytes})`);
    if (c.publicUrl && !/^https?:\/\/[^/]+\/?$/.test(c.publicUrl)) errors.push('DOMICILE_PUBLIC_URL: expected http(s)://host:port');
  }
  if (errors.length > 0) {
    throw new DomicileError('BAD_REQUEST', `invalid configuration:\n  ${errors.join('\n  ')}`, { errors });
  }
  c.sources = Object.freeze(sources);
  return Object.freeze(c);
}

/** True when this process is the embedded default (every region of the policy in one process). */
export function isEmbedded(config: Config): boolean {
  return config.region === undefined;
}
