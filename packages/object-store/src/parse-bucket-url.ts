import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DomicileError, isDomicileError } from '@domicile/errors';
import { FsObjectStore } from './fs/fs-object-store.ts';
import { validatePrefix, type ObjectStore } from './object-store.ts';
import { S3ObjectStore, type S3ObjectStoreOptions } from './s3/s3-object-store.ts';

/** A bucket URL taken apart; see docs/object-store.md for the formats. */
export type BucketLocation =
  | { kind: 'file'; root: string }
  | { kind: 's3'; options: S3ObjectStoreOptions };

/** Options of {@link openObjectStore} that cannot (or should not) live in a URL. */
export interface OpenObjectStoreOptions {
  /** Settings merged over those of an `s3://` URL: credentials, timeouts, part sizes. */
  s3?: Partial<Omit<S3ObjectStoreOptions, 'bucket' | 'prefix'>>;
}

/** Query parameters of an `s3://` URL, with how each is read. */
const S3_PARAMS = ['endpoint', 'region', 'forcePathStyle', 'leanPut', 'maxAttempts', 'connectTimeoutMs', 'requestTimeoutMs'] as const;

/** S3 bucket naming rules (lowercase letters, digits, dots, hyphens; 3–63 chars). */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * Parse a bucket URL without touching the store: `file:///abs/path` or
 * `s3://bucket/prefix?endpoint=...&region=...&forcePathStyle=true`. Throws
 * BAD_REQUEST naming the bad part; the message never echoes credentials.
 */
export function parseBucketUrl(url: string): BucketLocation {
  const fail = (what: string): never => {
    throw new DomicileError('BAD_REQUEST', `Invalid bucket URL ${redactUrl(url)}: ${what}.`, { url: redactUrl(url) });
  };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return fail('not a URL (expected file:///abs/path or s3://bucket/prefix?...)');
  }
  if (u.username || u.password) {
    fail('credentials do not belong in the URL; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS credential chain');
  }
  if (u.hash) fail(`unexpected fragment ${JSON.stringify(u.hash)}`);

  if (u.protocol === 'file:') {
    if (u.host !== '' && u.host !== 'localhost') {
      fail(`host ${JSON.stringify(u.host)} in a file URL; write an absolute path with three slashes: file:///abs/path`);
    }
    if (u.search) fail('file URLs take no query parameters');
    let root: string;
    try {
      root = fileURLToPath(u);
    } catch (err) {
      return fail(`bad path: ${(err as Error).message}`);
    }
    if (root.includes('\0')) fail('path contains NUL');
    return { kind: 'file', root: path.resolve(root) };
  }

  if (u.protocol === 's3:') {
    const bucket = u.hostname;
    if (!BUCKET_NAME.test(bucket)) {
      fail(`bucket name ${JSON.stringify(bucket)} is not a valid S3 bucket name (3-63 of a-z 0-9 . -)`);
    }
    if (u.port) fail(`port ${u.port} after the bucket name; put the server in ?endpoint=http://host:port`);
    let prefix = decodeURIComponent(u.pathname).replace(/^\/+/, '');
    if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';
    try {
      validatePrefix(prefix);
    } catch (err) {
      fail(`prefix ${JSON.stringify(prefix)}: ${(err as Error).message}`);
    }
    const options: S3ObjectStoreOptions = { bucket, prefix };
    for (const [name, value] of u.searchParams) {
      if (!(S3_PARAMS as readonly string[]).includes(name)) {
        fail(`unknown query parameter ${JSON.stringify(name)} (known: ${S3_PARAMS.join(', ')})`);
      }
      switch (name as (typeof S3_PARAMS)[number]) {
        case 'endpoint': {
          let e: URL | undefined;
          try {
            e = new URL(value);
          } catch {
            // reported below
          }
          if (!e || (e.protocol !== 'http:' && e.protocol !== 'https:')) {
            fail('endpoint must be an http:// or https:// URL');
          }
          if (e!.username || e!.password) fail('credentials do not belong in the endpoint URL');
          options.endpoint = value;
          break;
        }
        case 'region':
          if (!/^[a-z0-9-]+$/.test(value)) fail(`region ${JSON.stringify(value)} is not a region name`);
          options.region = value;
          break;
        case 'forcePathStyle':
          if (value !== 'true' && value !== 'false') fail('forcePathStyle must be true or false');
          options.forcePathStyle = value === 'true';
          break;
        case 'leanPut':
          if (value !== 'true' && value !== 'false') fail('leanPut must be true or false');
          options.leanPut = value === 'true';
          break;
        default: {
          const n = Number(value);
          if (!Number.isInteger(n) || n <= 0) fail(`${name} must be a positive integer, got ${JSON.stringify(value)}`);
          options[name as 'maxAttempts' | 'connectTimeoutMs' | 'requestTimeoutMs'] = n;
        }
      }
    }
    return { kind: 's3', options };
  }

  return fail(`unsupported scheme ${JSON.stringify(u.protocol.replace(/:$/, ''))} (expected file or s3)`);
}

/** Open the store a bucket URL names (see {@link parseBucketUrl}). Connects lazily: a bad endpoint shows on first use. */
export function openObjectStore(url: string, opts: OpenObjectStoreOptions = {}): ObjectStore {
  const loc = parseBucketUrl(url);
  if (loc.kind === 'file') return new FsObjectStore(loc.root);
  return new S3ObjectStore({ ...loc.options, ...opts.s3 });
}

/**
 * Read `DOMICILE_BUCKETS` (`region=url,...`) into one bucket URL per region,
 * in `regions` order. Regions the spec does not list get
 * `file://<dataDir>/buckets/<region>` (`dataDir` resolved to an absolute path).
 * Throws BAD_REQUEST naming the entry: a region the policy does not define, a
 * region listed twice, an invalid URL, or two regions sharing one URL (that
 * would store one region's data in another's bucket).
 */
export function parseBuckets(spec: string | undefined, regions: readonly string[], dataDir: string): Map<string, string> {
  const fail = (what: string, details: Record<string, unknown> = {}): never => {
    throw new DomicileError('BAD_REQUEST', `DOMICILE_BUCKETS: ${what}.`, { variable: 'DOMICILE_BUCKETS', ...details });
  };
  const given = new Map<string, string>();
  // Split only at commas that start a new `region=` entry, so a comma inside a URL survives.
  const entries = (spec ?? '').split(/,(?=\s*[^,=\s]+\s*=)/);
  for (const raw of entries) {
    const entry = raw.trim().replace(/[\s,]+$/, ''); // tolerate a trailing comma
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    if (eq <= 0) fail(`entry ${JSON.stringify(redactUrl(entry))} is not region=url`);
    const region = entry.slice(0, eq).trim();
    const url = entry.slice(eq + 1).trim();
    if (!regions.includes(region)) {
      fail(`unknown region ${JSON.stringify(region)} (the policy defines: ${regions.join(', ') || 'none'})`, { region });
    }
    if (given.has(region)) fail(`region ${JSON.stringify(region)} is listed twice`, { region });
    if (url === '') fail(`region ${JSON.stringify(region)} has an empty URL`, { region });
    try {
      parseBucketUrl(url);
    } catch (err) {
      if (isDomicileError(err)) fail(`region ${JSON.stringify(region)}: ${err.message}`, { region });
      throw err;
    }
    given.set(region, url);
  }
  const out = new Map<string, string>();
  const owner = new Map<string, string>();
  for (const region of regions) {
    const url = given.get(region) ?? pathToFileURL(path.resolve(dataDir, 'buckets', region)).href;
    const canonical = canonicalBucket(url);
    const other = owner.get(canonical);
    if (other !== undefined) {
      fail(`regions ${JSON.stringify(other)} and ${JSON.stringify(region)} share the bucket ${redactUrl(url)}`, { region });
    }
    owner.set(canonical, region);
    out.set(region, url);
  }
  return out;
}

function canonicalBucket(url: string): string {
  const loc = parseBucketUrl(url);
  if (loc.kind === 'file') return `file:${loc.root}`;
  const o = loc.options;
  return `s3:${o.endpoint ?? 'aws'}:${o.bucket}:${o.prefix ?? ''}`;
}

/** `url` with userinfo and query values other than endpoint/region/forcePathStyle hidden, for messages and logs. */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Not a URL: hide anything that looks like user:secret@.
    return url.replace(/\/\/[^/@]*@/, '//***@');
  }
  if (u.username) u.username = '***';
  if (u.password) u.password = '***';
  for (const key of [...u.searchParams.keys()]) {
    if (!(S3_PARAMS as readonly string[]).includes(key)) u.searchParams.set(key, '***');
    else if (key === 'endpoint') u.searchParams.set(key, redactInner(u.searchParams.get(key) ?? ''));
  }
  return u.href;
}

function redactInner(endpoint: string): string {
  try {
    const e = new URL(endpoint);
    if (e.username) e.username = '***';
    if (e.password) e.password = '***';
    return e.href;
  } catch {
    return endpoint;
  }
}
