import type { FastifyInstance } from 'fastify';
import { requireAdmin } from '../auth/authenticate.ts';
import { ClusterSchemaJobs } from '../cluster/cluster-schema.ts';
import { FORWARDED_BY, localOrPeers } from '../cluster/owner-routing.ts';
import type { Runtime } from '../runtime.ts';
import { MAX_MIGRATIONS } from '../schema/migration-list.ts';
import { MAX_SCHEMA_CONCURRENCY } from '../schema/schema-jobs.ts';
import { assertTenantId } from '../tenant-service.ts';

const putBody = {
  type: 'object',
  required: ['migrations'],
  additionalProperties: false,
  properties: {
    migrations: {
      type: 'array',
      maxItems: MAX_MIGRATIONS,
      items: {
        type: 'object',
        required: ['name', 'sql'],
        additionalProperties: false,
        properties: { name: { type: 'string', minLength: 1, maxLength: 200 }, sql: { type: 'string', minLength: 1 } },
      },
    },
  },
} as const;

const applyBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    tenants: { type: 'array', items: { type: 'string' }, maxItems: 100_000 },
    concurrency: { type: 'integer', minimum: 1, maximum: MAX_SCHEMA_CONCURRENCY },
  },
} as const;

/** Schema fan-out (DESIGN §5): the cluster's migration list and the jobs that apply it. */
export function schemaRoutes(app: FastifyInstance, rt: Runtime): void {
  const clusterJobs = rt.cluster ? new ClusterSchemaJobs(rt, rt.cluster) : undefined;
  app.get('/v1/schema', async (request) => {
    await requireAdmin(rt, request);
    return { migrations: await rt.schema.list() };
  });

  app.put<{ Body: { migrations: { name: string; sql: string }[] } }>('/v1/schema', { schema: { body: putBody } }, async (request) => {
    const { actor } = await requireAdmin(rt, request);
    const r = await rt.schema.put(request.body.migrations);
    if (r.added.length > 0) {
      rt.audit.append({ actor, action: 'schema.put', details: { added: r.added, migrations: r.migrations.length } });
      request.log.info({ added: r.added.length }, 'migrations stored');
    }
    return { added: r.added, migrations: r.migrations.map((m) => ({ name: m.name, checksum: m.checksum, storedAt: m.storedAt })) };
  });

  app.post<{ Body: { tenants?: string[]; concurrency?: number } | undefined }>('/v1/schema/apply', { schema: { body: applyBody } }, async (request, reply) => {
    const { actor } = await requireAdmin(rt, request);
    const body = request.body ?? {};
    if (body.tenants !== undefined) for (const id of body.tenants) assertTenantId(id);
    if (clusterJobs && request.headers[FORWARDED_BY] === undefined) {
      // One part per node: each migrates the tenants it owns (cluster/cluster-schema.ts).
      const jobId = await clusterJobs.start(request, body);
      rt.audit.append({ actor, action: 'schema.apply', details: { jobId, cluster: true, tenants: body.tenants === undefined ? 'all' : body.tenants.length } });
      return reply.code(202).send({ jobId });
    }
    const job = await rt.schemaJobs.start(body);
    rt.audit.append({ actor, action: 'schema.apply', details: { jobId: job.jobId, migrations: job.migrations, tenants: body.tenants === undefined ? 'all' : job.total } });
    return reply.code(202).send({ jobId: job.jobId });
  });

  app.get<{ Params: { jobId: string } }>('/v1/schema/jobs/:jobId', async (request, reply) => {
    await requireAdmin(rt, request);
    if (clusterJobs?.has(request.params.jobId)) return clusterJobs.get(request, request.params.jobId);
    // A cluster job started by another node: that node sums its parts.
    return localOrPeers(rt, request, reply, () => rt.schemaJobs.get(request.params.jobId));
  });
}
