import type { FastifyInstance } from 'fastify';
import { DomicileError } from '@domicile/errors';
import { placeTenant } from '@domicile/policy';
import { requireAdmin } from '../auth/authenticate.ts';
import { routeCreate } from '../cluster/owner-routing.ts';
import { DEFAULT_TOKEN_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS, type TokenScope } from '../auth/tenant-tokens.ts';
import type { Runtime } from '../runtime.ts';
import { assertTenantId, createTenant, eraseTenant, getLiveTenant, tenantView } from '../tenant-service.ts';
import { intParam, strParam } from './query-params.ts';

const createBody = {
  type: 'object',
  required: ['id', 'residency'],
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    residency: { type: 'string', minLength: 1, maxLength: 63 },
    region: { type: 'string', minLength: 1, maxLength: 63 },
    durability: { enum: ['async', 'sync'] },
  },
} as const;

const tokenBody = {
  type: 'object',
  required: ['scope'],
  additionalProperties: false,
  properties: {
    scope: { enum: ['read', 'write'] },
    ttlSeconds: { type: 'integer', minimum: 1, maximum: MAX_TOKEN_TTL_SECONDS },
  },
} as const;

/** The admin plane's tenant routes (DESIGN §5). */
export function tenantRoutes(app: FastifyInstance, rt: Runtime): void {
  app.post<{ Body: { id: string; residency: string; region?: string; durability?: 'async' | 'sync' } }>(
    '/v1/tenants', { schema: { body: createBody } }, async (request, reply) => {
      const { actor } = await requireAdmin(rt, request);
      if (rt.cluster) {
        assertTenantId(request.body.id);
        const { region } = placeTenant(rt.policy, { id: request.body.id, residency: request.body.residency, ...(request.body.region !== undefined ? { region: request.body.region } : {}) });
        if (await routeCreate(rt, rt.cluster, region, request, reply)) return reply;
      }
      const t = await createTenant(rt, request.body, actor);
      request.log.info({ tenant: t.id, region: t.region }, 'tenant created');
      return reply.code(201).send(tenantView(t));
    });

  app.get<{ Params: { id: string } }>('/v1/tenants/:id', async (request) => {
    const { id } = request.params;
    assertTenantId(id);
    await requireAdmin(rt, request);
    const t = await getLiveTenant(rt, id);
    return { ...tenantView(t), replication: rt.replicationView(t) };
  });

  app.get<{ Querystring: Record<string, unknown> }>('/v1/tenants', async (request) => {
    await requireAdmin(rt, request);
    const q = request.query;
    const limit = intParam(q, 'limit', 100, 1, 1000);
    const cursor = strParam(q, 'cursor');
    const region = strParam(q, 'region');
    const residency = strParam(q, 'residency');
    const page = await rt.directory.list({ limit, ...(cursor ? { cursor } : {}), ...(region ? { region } : {}), ...(residency ? { residency } : {}) });
    return {
      tenants: page.tenants.filter((t) => t.state !== 'creating' && t.state !== 'erasing').map(tenantView),
      nextCursor: page.nextCursor ?? null,
    };
  });

  app.delete<{ Params: { id: string } }>('/v1/tenants/:id', async (request) => {
    const { id } = request.params;
    assertTenantId(id);
    const { actor } = await requireAdmin(rt, request);
    const erased = await eraseTenant(rt, id, actor);
    request.log.info({ tenant: id, files: erased.files, bucketObjects: erased.bucketObjects }, 'tenant erased');
    return { erased };
  });

  app.post<{ Params: { id: string }; Body: { scope: TokenScope; ttlSeconds?: number } }>(
    '/v1/tenants/:id/tokens', { schema: { body: tokenBody } }, async (request, reply) => {
      const { id } = request.params;
      assertTenantId(id);
      await requireAdmin(rt, request);
      const t = await getLiveTenant(rt, id);
      const issued = await rt.tokens.issue({
        tenant: t.id, incarnation: t.incarnation, scope: request.body.scope,
        ttlSeconds: request.body.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS, notBeforeMs: t.tokensValidAfter,
      });
      return reply.code(201).send(issued);
    });

  app.post<{ Params: { id: string } }>('/v1/tenants/:id/tokens/revoke', async (request) => {
    const { id } = request.params;
    assertTenantId(id);
    const { actor } = await requireAdmin(rt, request);
    // Retry the compare-and-set a few times: a concurrent move may bump the epoch meanwhile.
    for (let attempt = 0; attempt < 5; attempt++) {
      const t = await getLiveTenant(rt, id);
      // Every token issued up to now (second granularity of `iat`) stops working.
      const validAfter = (Math.floor(Date.now() / 1000) + 1) * 1000;
      const next = await rt.directory.compareAndSet(id, t, { tokensValidAfter: Math.max(validAfter, t.tokensValidAfter) });
      if (next) {
        rt.audit.append({ actor, action: 'token.revoke', tenant: id, incarnation: t.incarnation, details: { validAfter: new Date(next.tokensValidAfter).toISOString() } });
        return { revoked: true, tokensValidAfter: new Date(next.tokensValidAfter).toISOString() };
      }
    }
    throw new DomicileError('TENANT_MOVING', `tenant "${id}" kept changing; retry`);
  });
}
