import type { FastifyInstance } from 'fastify';
import { DomicileError } from '@domicile/errors';
import { requireAdmin } from '../auth/authenticate.ts';
import { localOrPeers } from '../cluster/owner-routing.ts';
import { residencyAudit } from '../moves/residency-audit.ts';
import type { Runtime } from '../runtime.ts';
import { assertTenantId } from '../tenant-service.ts';
import { strParam } from './query-params.ts';

const moveBody = {
  type: 'object',
  required: ['to'],
  additionalProperties: false,
  properties: {
    to: { type: 'string', minLength: 1, maxLength: 63 },
    node: { type: 'string', minLength: 1, maxLength: 128 },
  },
} as const;

/** `?wait=1` / `?dryRun=1` (also `true`); anything else but absent, 0 or false is BAD_REQUEST. */
function flag(q: Record<string, unknown>, name: string): boolean {
  const v = strParam(q, name);
  if (v === undefined || v === '0' || v === 'false') return false;
  if (v === '1' || v === 'true') return true;
  throw new DomicileError('BAD_REQUEST', `${name} must be 1 or 0`, { field: name });
}

/** Moves (DESIGN §5, §9) and the residency audit. */
export function moveRoutes(app: FastifyInstance, rt: Runtime): void {
  app.post<{ Params: { id: string }; Body: { to: string; node?: string }; Querystring: Record<string, unknown> }>(
    '/v1/tenants/:id/move', { schema: { body: moveBody } }, async (request, reply) => {
      const { actor } = await requireAdmin(rt, request);
      assertTenantId(request.params.id);
      const wait = flag(request.query, 'wait');
      if (flag(request.query, 'dryRun')) {
        // The policy's decision, explained; nothing changes (docs/moves.md "Dry run").
        return { dryRun: true, ...(await rt.moves.explain(request.params.id, request.body.to, request.body.node)) };
      }
      const { moveId, done } = await rt.moves.start(request.params.id, request.body, actor);
      request.log.info({ tenant: request.params.id, to: request.body.to, moveId }, 'move started');
      if (!wait) return reply.code(202).send({ moveId });
      const status = await done;
      const failure = rt.moves.failure(moveId);
      if (status.phase === 'aborted' && failure) {
        const retry = failure.retryAfterSeconds;
        if (retry !== undefined) void reply.header('retry-after', String(retry));
        return reply.code(failure.statusCode).send({ ...failure.toJSON(), move: status });
      }
      return status;
    });

  app.get<{ Params: { moveId: string } }>('/v1/moves/:moveId', async (request, reply) => {
    await requireAdmin(rt, request);
    // In a cluster the status lives on the node that drives the move (the tenant's owner then).
    return localOrPeers(rt, request, reply, () => rt.moves.status(request.params.moveId));
  });

  app.get('/v1/audit/residency', async (request) => {
    await requireAdmin(rt, request);
    return residencyAudit(rt);
  });
}
