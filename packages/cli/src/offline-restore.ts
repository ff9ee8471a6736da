/**
 * Disaster recovery with no node running (DESIGN §6): `domicile restore TENANT
 * --from BUCKET_URL --out FILE` rebuilds a plain SQLite file from a bucket
 * alone. Which incarnation and generation to follow is decided from the
 * bucket's keys (no directory to ask); the replication library's `restore`
 * checks every object and runs `PRAGMA integrity_check`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { DomicileError, isDomicileError } from '@domicile/errors';
import { openObjectStore, type ObjectStore, type OpenObjectStoreOptions } from '@domicile/object-store';
import { chooseGeneration as chooseGenerationFor, describeGeneration, hex16, listGenerations, parseKey, restore, tenantPrefix, type GenerationInfo, type RestoreTarget } from '@domicile/replication';
import { UsageError } from './exit-codes.ts';

/** Options of {@link offlineRestore}. */
export interface OfflineRestoreOptions {
  /** Bucket URL (`file:///...` or `s3://...`). */
  from: string;
  /** Output file. */
  out: string;
  /** Target time (ms) or txid; neither: the newest state. */
  at?: number;
  txid?: number;
  incarnation?: string;
  /** Generation id (20 hex digits), optionally as `<epoch hex16>-<id>`. */
  generation?: string;
  /** Replace an existing output file. */
  force?: boolean;
  /** Environment for S3 credentials (`AWS_ACCESS_KEY_ID`, ...); the AWS chain otherwise. */
  env: Readonly<Record<string, string | undefined>>;
  /** Where a relative `out` resolves. */
  cwd: string;
}

/** What an offline restore produced. */
export interface OfflineRestoreResult {
  tenant: string;
  incarnation: string;
  generation: string;
  epoch: number;
  txid: number;
  /** RFC 3339 commit time of `txid`. */
  time: string;
  bytes: number;
  out: string;
}

/** Restore `tenant` from a bucket into a new SQLite file; see the module comment. */
export async function offlineRestore(tenant: string, opts: OfflineRestoreOptions): Promise<OfflineRestoreResult> {
  const prefix = tenantPrefix(tenant);
  const out = path.resolve(opts.cwd, opts.out);
  checkOutput(out, opts.force === true);
  const store = openBucket(opts.from, opts.env);
  try {
    const incarnation = await chooseIncarnation(store, tenant, prefix, opts.incarnation);
    const generations = await listGenerations(store, tenant, incarnation);
    const target: RestoreTarget = opts.txid !== undefined ? { txid: opts.txid } : opts.at !== undefined ? { time: opts.at } : 'latest';
    const g = chooseGeneration(generations, target, opts.generation, store);
    // Restore beside the output, then swap it in: an old file (and its -wal, which SQLite
    // would replay onto the new one) is replaced only once the new file passed every check.
    const staging = `${out}.offline-${randomBytes(6).toString('hex')}.tmp`;
    let r;
    try {
      r = await restore({ store, ref: { tenant, incarnation, epoch: g.epoch, generation: g.generation }, target, outPath: staging });
      for (const s of ['-wal', '-shm', '-journal']) rmSync(out + s, { force: true });
      renameSync(staging, out);
    } finally {
      rmSync(staging, { force: true });
    }
    return { tenant, incarnation, generation: g.generation, epoch: g.epoch, txid: r.txid, time: new Date(r.time).toISOString(), bytes: r.bytes, out };
  } finally {
    store.close();
  }
}

function checkOutput(out: string, force: boolean): void {
  const dir = path.dirname(out);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--out ${out}: the folder ${dir} does not exist`);
  if (existsSync(out) && statSync(out).isDirectory()) throw new UsageError(`--out ${out} is a folder; name the file to write`);
  if (!force) {
    const taken = ['', '-wal', '-shm'].map((s) => out + s).find((f) => existsSync(f));
    if (taken !== undefined) throw new UsageError(`refusing to overwrite ${taken}; pass --force to replace it`);
  }
}

function openBucket(url: string, env: OfflineRestoreOptions['env']): ObjectStore {
  const s3: OpenObjectStoreOptions['s3'] = {};
  // The CLI's own environment (tests drive run() in process); otherwise the SDK's default chain.
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    s3.credentials = {
      accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
    };
  }
  try {
    return openObjectStore(url, { s3 });
  } catch (err) {
    if (isDomicileError(err) && err.code === 'BAD_REQUEST') throw new UsageError(`--from: ${err.message}`);
    throw err;
  }
}

/** The incarnations of `tenant` in the bucket, each with its number of backup objects. */
async function incarnationsOf(store: ObjectStore, prefix: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for await (const e of store.list(prefix)) {
    let inc: string;
    try {
      inc = parseKey(e.key).incarnation;
    } catch {
      continue; // not a backup object; restore itself refuses strangers inside a generation
    }
    found.set(inc, (found.get(inc) ?? 0) + 1);
  }
  return found;
}

async function chooseIncarnation(store: ObjectStore, tenant: string, prefix: string, wanted: string | undefined): Promise<string> {
  const found = await incarnationsOf(store, prefix);
  const where = store.describe();
  if (found.size === 0) {
    throw new DomicileError('TENANT_NOT_FOUND', `no backups of tenant "${tenant}" in ${where}`, { tenant, bucket: where });
  }
  const listing = [...found].map(([inc, n]) => `${inc} (${n} objects)`).join(', ');
  if (wanted !== undefined) {
    if (!found.has(wanted)) throw new UsageError(`--incarnation ${wanted}: no backups of it in ${where}; found ${listing}`);
    return wanted;
  }
  if (found.size > 1) {
    throw new UsageError(`tenant "${tenant}" has ${found.size} incarnations in ${where} (a re-created id is a different tenant): ${listing}; pick one with --incarnation`);
  }
  return [...found.keys()][0]!;
}

/** `--generation`, or the newest generation with a snapshot that holds the target. */
function chooseGeneration(gens: GenerationInfo[], target: RestoreTarget, wanted: string | undefined, store: ObjectStore): GenerationInfo {
  if (wanted !== undefined) {
    const g = gens.find((x) => x.generation === wanted || `${hex16(x.epoch)}-${x.generation}` === wanted);
    if (!g) throw new UsageError(`--generation ${wanted}: not in ${store.describe()}; found ${gens.map(describeGeneration).join(', ') || 'none'}`);
    return g;
  }
  return chooseGenerationFor(gens, target, store.describe());
}
