import type { FastifyInstance } from 'fastify';
import { DomicileError } from '@domicile/errors';
import { requireAdmin } from '../auth/authenticate.ts';
import { clusterAudit } from '../cluster/cluster-audit.ts';
import { FORWARDED_BY } from '../cluster/owner-routing.ts';
import type { Runtime } from '../runtime.ts';
import { assertTenantId } from '../tenant-service.ts';
import { intParam, strParam } from './query-params.ts';
import { statusPageRoutes } from './status-page.ts';

/** Health, readiness, metrics, status, policy, cluster and audit routes. */
export function opsRoutes(app: FastifyInstance, rt: Runtime): void {
  app.get('/healthz', async () => ({ ok: true }));

  app.get('/readyz', async (_request, reply) => {
    if (!rt.ready) {
      throw new DomicileError('NODE_UNAVAILABLE', 'the node is starting or shutting down');
    }
    return reply.send({ ready: true });
  });

  app.get('/metrics', async (_request, reply) => {
    const body = await rt.metrics.registry.metrics();
    return reply.type(rt.metrics.registry.contentType).send(body);
  });

  statusPageRoutes(app);

  /** Aggregates only: no tenant ids (public). */
  app.get('/v1/status', async () => {
    const counts = await rt.directory.countByRegion();
    // In a cluster: every node that joined, from the membership (live ones are healthy).
    const members = rt.cluster ? await rt.cluster.membership.nodes() : undefined;
    const stats = rt.pool.stats();
    // Worst replication lag per region (ms); undefined when replication is off.
    const lag = rt.replicationLagByRegion();
    return {
      mode: rt.cluster ? 'cluster' : rt.config.region ? 'single-region' : 'embedded',
      policyHash: rt.policy.hash,
      regions: rt.policy.regionOrder.map((name) => ({
        name,
        jurisdiction: rt.policy.regions[name]?.jurisdiction,
        tenants: counts.get(name) ?? 0,
        nodes: members ? members.filter((n) => n.region === name && n.live).map((n) => n.id) : rt.nodeForRegion(name) ? [rt.nodeForRegion(name)!.id] : [],
        replicationLagMs: lag ? (lag.get(name) ?? 0) : null,
      })),
      nodes: members
        ? members.map((n) => ({ id: n.id, region: n.region, healthy: n.id === rt.cluster!.id ? rt.ready && rt.cluster!.canWrite() : n.live }))
        : [...rt.nodes.values()].map((n) => ({ id: n.id, region: n.region, healthy: rt.ready })),
      tenants: [...counts.values()].reduce((a, b) => a + b, 0),
      shards: { open: stats.openShards, queued: stats.queued, workers: stats.workers },
      // null when replication is off (the page shows —), not zero lag.
      replication: { maxLagMs: lag ? Math.max(0, ...lag.values()) : null },
      movesInProgress: rt.moves.inProgress,
    };
  });

  app.get('/v1/policy', async (request) => {
    await requireAdmin(rt, request);
    const p = rt.policy;
    return { hash: p.hash, source: p.source, version: p.version, regions: p.regions, regionOrder: p.regionOrder, residencies: p.residencies, tenants: p.tenants };
  });

  app.get('/v1/cluster', async (request) => {
    await requireAdmin(rt, request);
    const counts = await rt.directory.countByRegion();
    if (rt.cluster) {
      // Every node that joined and did not leave, live or not, as the membership knows it.
      const members = await rt.cluster.membership.nodes();
      const hashes = [...new Set(members.filter((n) => n.live).map((n) => n.policyHash))];
      return {
        mode: 'cluster',
        node: rt.cluster.id,
        regions: rt.policy.regionOrder.map((name) => ({
          name, jurisdiction: rt.policy.regions[name]?.jurisdiction, tenants: counts.get(name) ?? 0,
          liveNodes: members.filter((n) => n.live && n.region === name).map((n) => n.id),
        })),
        nodes: members.map((n) => ({ id: n.id, region: n.region, url: n.url, healthy: n.live, policyHash: n.policyHash, protocolVersion: n.protocolVersion })),
        policyHashes: hashes,
        policyMismatch: hashes.length > 1 || (hashes.length === 1 && hashes[0] !== rt.policy.hash),
      };
    }
    return {
      mode: rt.config.region ? 'single-region' : 'embedded',
      regions: rt.policy.regionOrder.map((name) => ({ name, jurisdiction: rt.policy.regions[name]?.jurisdiction, tenants: counts.get(name) ?? 0 })),
      nodes: [...rt.nodes.values()].map((n) => ({ id: n.id, region: n.region, healthy: rt.ready, policyHash: rt.policy.hash, tenants: counts.get(n.region) ?? 0 })),
      policyHashes: [rt.policy.hash],
      policyMismatch: false,
    };
  });

  app.get<{ Querystring: Record<string, unknown> }>('/v1/audit', async (request) => {
    await requireAdmin(rt, request);
    const tenant = strParam(request.query, 'tenant');
    if (tenant !== undefined) assertTenantId(tenant);
    const cursor = strParam(request.query, 'cursor');
    const q = { limit: intParam(request.query, 'limit', 100, 1, 1000), ...(tenant ? { tenant } : {}), ...(cursor ? { cursor } : {}) };
    // A cluster's log is spread over its nodes: merged here, unless a peer is asking for this node's own part.
    if (rt.cluster && request.headers[FORWARDED_BY] === undefined) return clusterAudit(rt, rt.cluster, request, q);
    const page = rt.audit.list(q);
    return { events: page.events, nextCursor: page.nextCursor ?? null };
  });
}
