/**
 * Schema jobs (DESIGN §5 "Schema fan-out"): apply the stored migration list to
 * many tenants, a bounded number at a time, and report progress and
 * per-tenant failures. Jobs live in memory: a restart forgets them, and that
 * is safe because applying is idempotent per tenant (each shard records what
 * it applied in `_domicile_migrations`), so running the job again applies
 * exactly what is still missing.
 */
import { randomUUID } from 'node:crypto';
import type { Directory, TenantRecord } from '@domicile/directory';
import { DomicileError, isDomicileError, type ErrorCode } from '@domicile/errors';
import type { MigrateResult, ShardMigration, ShardPool, ShardRef } from '@domicile/shard';
import type { SchemaStore } from './schema-store.ts';

/** Tenants migrated at once when the request does not say. */
export const DEFAULT_SCHEMA_CONCURRENCY = 4;
/** Upper bound of `concurrency`. */
export const MAX_SCHEMA_CONCURRENCY = 64;
/** Failures kept per job; `failed` keeps counting past it. */
export const MAX_REPORTED_FAILURES = 1000;
/** Finished jobs kept for `GET /v1/schema/jobs/:id`; the oldest go first. */
export const MAX_FINISHED_JOBS = 100;
/** How long a job waits for a tenant that is being created to turn active. */
const CREATING_WAIT_MS = 5000;
const DIRECTORY_PAGE = 1000;

/** One tenant that did not get the whole list. */
export interface SchemaJobFailure {
  tenant: string;
  /** The migration that failed; null when the tenant could not be reached at all. */
  migration: string | null;
  code: ErrorCode;
  message: string;
  /** Further details of the error (`sqliteCode`, `reason`, ...). */
  [detail: string]: unknown;
}

/** What `GET /v1/schema/jobs/:jobId` answers. */
export interface SchemaJobStatus {
  jobId: string;
  state: 'running' | 'done';
  /** Migrations in the list the job applies (the stored list when it started). */
  migrations: number;
  /** Tenants to visit; grows while the directory is being listed. */
  total: number;
  /** Tenants visited: applied + upToDate + failed + skipped. */
  done: number;
  /** Tenants that applied at least one migration in this job. */
  applied: number;
  /** Tenants that had every migration already. */
  upToDate: number;
  failed: number;
  /** Tenants listed but gone (erased) by the time their turn came. */
  skipped: number;
  /** Migration applications in total, across tenants. */
  migrationsApplied: number;
  failures: SchemaJobFailure[];
  /** True when more than MAX_REPORTED_FAILURES tenants failed; `failed` has the count. */
  failuresTruncated: boolean;
  concurrency: number;
  startedAt: string;
  finishedAt?: string;
  /** Set when the node shut down before every tenant was visited. */
  stopped?: boolean;
}

/** What a job needs from the node (the Runtime provides it). */
export interface SchemaJobDeps {
  schema: Pick<SchemaStore, 'list'>;
  directory: Pick<Directory, 'get' | 'list'>;
  pool: Pick<ShardPool, 'migrate'>;
  /** Where a tenant's shard lives here; throws NODE_UNAVAILABLE for a region this node does not serve. */
  shardRef(t: TenantRecord): ShardRef;
  /** In a cluster: this node's id; a job over every tenant then visits this node's tenants only (the others run theirs). */
  nodeId?: string | undefined;
  log: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

interface Job {
  status: SchemaJobStatus;
  list: ShardMigration[];
  /** Explicitly named tenants (a missing one is a failure) or undefined for all. */
  named: string[] | undefined;
  ids: string[];
  running: Promise<void>;
}

/** Starts, runs and remembers schema jobs. */
export class SchemaJobs {
  readonly #deps: SchemaJobDeps;
  readonly #jobs = new Map<string, Job>();
  #closing = false;

  constructor(deps: SchemaJobDeps) {
    this.#deps = deps;
  }

  /**
   * Start applying the stored list to `tenants` (validated ids, deduplicated)
   * or, without them, to every tenant in the directory. Resolves with the new
   * job's status once it runs in the background.
   */
  async start(req: { tenants?: readonly string[]; concurrency?: number }): Promise<SchemaJobStatus> {
    if (this.#closing) throw new DomicileError('NODE_UNAVAILABLE', 'the node is shutting down');
    const concurrency = req.concurrency ?? DEFAULT_SCHEMA_CONCURRENCY;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_SCHEMA_CONCURRENCY) {
      throw new DomicileError('BAD_REQUEST', `concurrency must be an integer from 1 to ${MAX_SCHEMA_CONCURRENCY}`, { field: 'concurrency' });
    }
    const stored = await this.#deps.schema.list();
    const list = stored.map((m) => ({ name: m.name, sql: m.sql, checksum: m.checksum }));
    const named = req.tenants === undefined ? undefined : [...new Set(req.tenants)];
    const status: SchemaJobStatus = {
      jobId: randomUUID(), state: 'running', migrations: list.length, total: named?.length ?? 0, done: 0,
      applied: 0, upToDate: 0, failed: 0, skipped: 0, migrationsApplied: 0, failures: [], failuresTruncated: false,
      concurrency, startedAt: new Date().toISOString(),
    };
    const job: Job = { status, list, named, ids: named ?? [], running: Promise.resolve() };
    this.#jobs.set(status.jobId, job);
    job.running = this.#run(job);
    return this.#view(job);
  }

  /** A job's status; NOT_FOUND for an unknown (or forgotten) id. */
  get(jobId: string): SchemaJobStatus {
    const job = this.#jobs.get(jobId);
    if (!job) throw new DomicileError('NOT_FOUND', `no schema job "${jobId.slice(0, 80)}" on this node (jobs are kept in memory until a restart)`, { jobId: jobId.slice(0, 80) });
    return this.#view(job);
  }

  /** Stop starting tenants and wait for the ones in progress; unvisited tenants stay as they were. */
  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.#jobs.values()].map((j) => j.running));
  }

  #view(job: Job): SchemaJobStatus {
    return { ...job.status, failures: job.status.failures.map((f) => ({ ...f })) };
  }

  async #run(job: Job): Promise<void> {
    const s = job.status;
    try {
      if (job.named === undefined) await this.#listAll(job);
      let next = 0;
      const lane = async () => {
        while (!this.#closing && next < job.ids.length) {
          const id = job.ids[next++]!;
          await this.#one(job, id);
        }
      };
      await Promise.all(Array.from({ length: Math.min(s.concurrency, Math.max(1, job.ids.length)) }, lane));
      if (s.done < s.total) s.stopped = true;
    } catch (err) {
      // Listing the directory failed: the job ends with what it did; the tenants not visited are not failures of theirs.
      s.stopped = true;
      this.#deps.log.warn({ jobId: s.jobId, code: isDomicileError(err) ? err.code : 'INTERNAL' }, 'schema job stopped');
    } finally {
      s.state = 'done';
      s.finishedAt = new Date().toISOString();
      this.#deps.log.info({ jobId: s.jobId, total: s.total, applied: s.applied, upToDate: s.upToDate, failed: s.failed, skipped: s.skipped }, 'schema job done');
      this.#forgetOld();
    }
  }

  async #listAll(job: Job): Promise<void> {
    let cursor: string | undefined;
    do {
      const page = await this.#deps.directory.list({ limit: DIRECTORY_PAGE, ...(cursor ? { cursor } : {}), ...(this.#deps.nodeId !== undefined ? { node: this.#deps.nodeId } : {}) });
      for (const t of page.tenants) if (t.state !== 'erasing') job.ids.push(t.id);
      job.status.total = job.ids.length;
      cursor = page.nextCursor;
    } while (cursor && !this.#closing);
  }

  async #one(job: Job, id: string): Promise<void> {
    const s = job.status;
    let result: MigrateResult;
    try {
      const t = await this.#live(id);
      if (!t) {
        if (job.named === undefined) s.skipped++;
        else this.#fail(job, { tenant: id, migration: null, code: 'TENANT_NOT_FOUND', message: `tenant "${id}" not found` });
        return;
      }
      result = await this.#deps.pool.migrate(this.#deps.shardRef(t), job.list);
    } catch (err) {
      const e = isDomicileError(err) ? err : new DomicileError('INTERNAL', 'applying the schema failed', {}, { cause: err });
      if (job.named === undefined && e.code === 'TENANT_NOT_FOUND') s.skipped++;
      else this.#fail(job, { ...e.details, tenant: id, migration: null, code: e.code, message: e.code === 'INTERNAL' ? 'internal error' : e.message });
      return;
    } finally {
      s.done++;
    }
    s.migrationsApplied += result.applied.length;
    if (result.failure) {
      const f = result.failure;
      this.#fail(job, { ...f.details, tenant: id, migration: f.migration, code: f.code, message: f.message });
    } else if (result.applied.length > 0) s.applied++;
    else s.upToDate++;
  }

  /**
   * The tenant's record once it serves: a tenant being created gets the list
   * from its creation, but may have read it before a concurrent PUT; waiting
   * for it to turn active and applying again closes that gap (idempotent).
   */
  async #live(id: string): Promise<TenantRecord | undefined> {
    const deadline = Date.now() + CREATING_WAIT_MS;
    for (;;) {
      const t = await this.#deps.directory.get(id);
      if (!t || t.state === 'erasing') return undefined;
      if (t.state !== 'creating') return t;
      if (Date.now() > deadline) return undefined;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  #fail(job: Job, f: SchemaJobFailure): void {
    const s = job.status;
    s.failed++;
    this.#deps.log.info({ jobId: s.jobId, tenant: f.tenant, migration: f.migration, code: f.code }, 'schema job: tenant failed');
    if (s.failures.length < MAX_REPORTED_FAILURES) s.failures.push(f);
    else s.failuresTruncated = true;
  }

  #forgetOld(): void {
    const finished = [...this.#jobs.values()].filter((j) => j.status.state === 'done');
    for (const j of finished.slice(0, Math.max(0, finished.length - MAX_FINISHED_JOBS))) this.#jobs.delete(j.status.jobId);
  }
}

/**
 * Apply the stored list to a tenant being created (before it turns active).
 * Re-reads the list until it stops growing, so a PUT that lands meanwhile is
 * not missed. A failing migration fails the creation with that migration's
 * error (code kept, `migration` in the details).
 */
export async function applyStoredSchema(deps: Pick<SchemaJobDeps, 'schema' | 'pool'>, ref: ShardRef): Promise<void> {
  let seen = -1;
  for (let round = 0; round < 5; round++) {
    const stored = await deps.schema.list();
    if (stored.length === seen) return;
    seen = stored.length;
    if (stored.length === 0) return;
    const r = await deps.pool.migrate(ref, stored.map((m) => ({ name: m.name, sql: m.sql, checksum: m.checksum })));
    if (r.failure) {
      const f = r.failure;
      throw new DomicileError(f.code, `migration "${f.migration}" failed on the new tenant: ${f.message}`, { ...f.details, migration: f.migration });
    }
  }
}
