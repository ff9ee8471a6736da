/**
 * Schema fan-out in a cluster (DESIGN §5, docs/schema.md): the migration list
 * lives in Redis (RedisSchemaStore); a tenant is migrated by its owner. So
 * `POST /v1/schema/apply` on any node starts one part per live node — each
 * node visits its own tenants (named ones are sent to their owners) — and
 * answers one job id; `GET /v1/schema/jobs/:jobId` on that node sums the
 * parts' statuses. A part that could not be started or read is named in
 * `incomplete`. Parts are asked with the caller's admin token and
 * `Domicile-Forwarded-By`, so a node never fans out a request it got from a peer.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { DomicileError } from '@domicile/errors';
import type { Runtime } from '../runtime.ts';
import type { SchemaJobStatus } from '../schema/schema-jobs.ts';
import type { ClusterNode } from './cluster-node.ts';
import { FORWARDED_BY } from './owner-routing.ts';

interface Part {
  node: string;
  /** Undefined for this node's own part. */
  url?: string;
  jobId: string;
}

/** A cluster job's status: the parts' sums, plus what could not be reached. */
export type ClusterJobStatus = SchemaJobStatus & { nodes: Array<{ node: string; jobId: string; state: string }>; incomplete: string[] };

/** Cluster jobs started by this node (kept like the local ones: in memory, until a restart). */
export class ClusterSchemaJobs {
  readonly #rt: Runtime;
  readonly #cluster: ClusterNode;
  readonly #jobs = new Map<string, { parts: Part[]; incomplete: string[]; startedAt: string }>();

  constructor(rt: Runtime, cluster: ClusterNode) {
    this.#rt = rt;
    this.#cluster = cluster;
  }

  /** True when `jobId` is a cluster job of this node. */
  has(jobId: string): boolean {
    return this.#jobs.has(jobId);
  }

  /** Starts one part per live node (per owner, for named tenants); returns the cluster job's id. */
  async start(request: FastifyRequest, req: { tenants?: string[]; concurrency?: number }): Promise<string> {
    const live = await this.#cluster.liveNodes();
    const parts = new Map<string, { url?: string; body: { tenants?: string[]; concurrency?: number } }>();
    const c = req.concurrency === undefined ? {} : { concurrency: req.concurrency };
    if (req.tenants === undefined) {
      for (const n of live) parts.set(n.id, { ...(n.id === this.#cluster.id ? {} : { url: n.url }), body: { ...c } });
    } else {
      for (const id of new Set(req.tenants)) {
        const t = await this.#rt.directory.get(id);
        // Unknown tenants, and tenants whose owner is down, are reported by this node's part.
        const owner = t ? live.find((n) => n.id === t.node) : undefined;
        const key = owner?.id ?? this.#cluster.id;
        const part = parts.get(key) ?? { ...(owner && owner.id !== this.#cluster.id ? { url: owner.url } : {}), body: { ...c, tenants: [] } };
        part.body.tenants!.push(id);
        parts.set(key, part);
      }
    }
    const started: Part[] = [];
    const incomplete: string[] = [];
    await Promise.all([...parts].map(async ([node, part]) => {
      try {
        if (part.url === undefined) {
          started.push({ node, jobId: (await this.#rt.schemaJobs.start(part.body)).jobId });
          return;
        }
        const res = await fetch(`${part.url}/v1/schema/apply`, {
          method: 'POST',
          headers: { authorization: String(request.headers.authorization ?? ''), 'content-type': 'application/json', [FORWARDED_BY]: this.#cluster.id },
          body: JSON.stringify(part.body),
          signal: AbortSignal.timeout(10_000),
        });
        if (res.status !== 202) throw new Error(`HTTP ${res.status}`);
        started.push({ node, url: part.url, jobId: ((await res.json()) as { jobId: string }).jobId });
      } catch (err) {
        incomplete.push(`node ${node}: its part did not start (${String((err as Error)?.message ?? err)})`);
      }
    }));
    if (started.length === 0) throw new DomicileError('NODE_UNAVAILABLE', 'no node could start its part of the schema job', { incomplete });
    const jobId = randomUUID();
    this.#jobs.set(jobId, { parts: started.sort((a, b) => a.node.localeCompare(b.node)), incomplete, startedAt: new Date().toISOString() });
    return jobId;
  }

  /** The parts' statuses, summed. */
  async get(request: FastifyRequest, jobId: string): Promise<ClusterJobStatus> {
    const job = this.#jobs.get(jobId);
    if (!job) throw new DomicileError('NOT_FOUND', `no schema job "${jobId.slice(0, 80)}"`, { jobId: jobId.slice(0, 80) });
    const incomplete = [...job.incomplete];
    const parts = await Promise.all(job.parts.map(async (p) => {
      try {
        if (p.url === undefined) return { part: p, status: this.#rt.schemaJobs.get(p.jobId) };
        const res = await fetch(`${p.url}/v1/schema/jobs/${p.jobId}`, {
          headers: { authorization: String(request.headers.authorization ?? ''), [FORWARDED_BY]: this.#cluster.id }, signal: AbortSignal.timeout(10_000),
        });
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        return { part: p, status: (await res.json()) as SchemaJobStatus };
      } catch (err) {
        incomplete.push(`node ${p.node}: its part's status was not read (${String((err as Error)?.message ?? err)})`);
        return { part: p, status: undefined };
      }
    }));
    const sum = (k: 'total' | 'done' | 'applied' | 'upToDate' | 'failed' | 'skipped' | 'migrationsApplied') => parts.reduce((a, p) => a + (p.status?.[k] ?? 0), 0);
    const statuses = parts.flatMap((p) => (p.status ? [{ ...p.status, node: p.part.node }] : []));
    const running = statuses.some((s) => s.state === 'running') || incomplete.length > job.incomplete.length;
    const finished = statuses.map((s) => s.finishedAt).filter((f): f is string => f !== undefined).sort();
    return {
      jobId,
      state: running ? 'running' : 'done',
      migrations: Math.max(0, ...statuses.map((s) => s.migrations)),
      total: sum('total'), done: sum('done'), applied: sum('applied'), upToDate: sum('upToDate'), failed: sum('failed'), skipped: sum('skipped'),
      migrationsApplied: sum('migrationsApplied'),
      failures: statuses.flatMap((s) => s.failures.map((f) => ({ ...f, node: s.node }))),
      failuresTruncated: statuses.some((s) => s.failuresTruncated),
      concurrency: statuses[0]?.concurrency ?? 0,
      startedAt: job.startedAt,
      ...(running || finished.length === 0 ? {} : { finishedAt: finished.at(-1)! }),
      ...(statuses.some((s) => s.stopped) ? { stopped: true } : {}),
      nodes: parts.map((p) => ({ node: p.part.node, jobId: p.part.jobId, state: p.status?.state ?? 'unknown' })),
      incomplete,
    };
  }
}
