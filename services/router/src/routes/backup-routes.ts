import type { FastifyInstance } from 'fastify';
import { DomicileError } from '@domicile/errors';
import { listGenerations, type GenerationInfo } from '@domicile/replication';
import { requireAdmin } from '../auth/authenticate.ts';
import { restoreTenant, type RestoreRequest } from '../restore/restore-service.ts';
import type { Runtime } from '../runtime.ts';
import { assertTenantId, getLiveTenant } from '../tenant-service.ts';

/** One generation as `GET /v1/tenants/:id/backups` answers it (times in RFC 3339). */
export function generationView(g: GenerationInfo, region: string): Record<string, unknown> {
  const iso = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : null);
  return {
    generation: g.generation, epoch: g.epoch, region,
    snapshots: g.snapshots.map((s) => ({ txid: s.txid, time: iso(s.time), bytes: s.size })),
    segmentCount: g.segmentCount,
    firstTxid: g.firstTxid, lastTxid: g.lastTxid, firstTime: iso(g.firstTime), lastTime: iso(g.lastTime),
  };
}

const restoreBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    at: { type: 'string', minLength: 1, maxLength: 64 },
    txid: { type: 'integer', minimum: 0 },
    as: { type: 'string', minLength: 1, maxLength: 64 },
  },
} as const;

/**
 * `POST /v1/tenants/:id/restore` (restore/restore-service.ts) and
 * `GET /v1/tenants/:id/backups` (DESIGN §5): the generations of the tenant's
 * current incarnation in the bucket of its current region (backups live there,
 * `backups: same-region`), oldest first. Empty until replication ships them.
 */
export function backupRoutes(app: FastifyInstance, rt: Runtime): void {
  app.get<{ Params: { id: string } }>('/v1/tenants/:id/backups', async (request) => {
    const { id } = request.params;
    assertTenantId(id);
    await requireAdmin(rt, request);
    const t = await getLiveTenant(rt, id);
    const store = rt.bucketFor(t.region);
    if (!store) {
      throw new DomicileError('NODE_UNAVAILABLE', `this node knows no bucket for region "${t.region}"; list it in DOMICILE_BUCKETS or ask a node of that region`, { region: t.region });
    }
    const generations = await listGenerations(store, t.id, t.incarnation);
    return { tenant: t.id, incarnation: t.incarnation, region: t.region, generations: generations.map((g) => generationView(g, t.region)) };
  });

  app.post<{ Params: { id: string }; Body: RestoreRequest }>('/v1/tenants/:id/restore', { schema: { body: restoreBody } }, async (request) => {
    const { id } = request.params;
    assertTenantId(id);
    const { actor } = await requireAdmin(rt, request);
    return restoreTenant(rt, id, request.body ?? {}, actor);
  });
}
