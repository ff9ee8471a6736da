import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DomicileError } from '@domicile/errors';
import type { Statement } from '@domicile/shard';
import { authenticate, authorizeTenant } from '../auth/authenticate.ts';
import { assertOwnedHere } from '../cluster/owner-routing.ts';
import { runDurable } from '../replication/durability.ts';
import type { Runtime } from '../runtime.ts';
import { assertTenantId, getLiveTenant } from '../tenant-service.ts';
import { answer, idempotencyKeyOf } from './idempotency-header.ts';

const statement = {
  type: 'object',
  required: ['sql'],
  additionalProperties: false,
  properties: {
    sql: { type: 'string', minLength: 1 },
    params: { type: ['array', 'object'] },
  },
} as const;

const batchBody = {
  type: 'object',
  required: ['statements'],
  additionalProperties: false,
  properties: { statements: { type: 'array', minItems: 1, maxItems: 10_000, items: statement } },
} as const;

/**
 * Resolves the tenant of a data-plane request and what the caller may do with it. Waits at the
 * tenant's move gate first (a fenced tenant's requests pause here, then resolve the new primary);
 * call `leave()` once the request has answered. `heldSession`: an interactive transaction that
 * already holds the tenant passes without waiting.
 */
export async function tenantAccess(rt: Runtime, request: FastifyRequest<{ Params: { id: string } }>, opts: { heldSession?: boolean } = {}) {
  const { id } = request.params;
  assertTenantId(id);
  request.log = request.log.child({ tenant: id });
  const principal = await authenticate(rt, request);
  // A tenant token for another tenant is refused before the directory is consulted: it learns nothing.
  if (principal.kind === 'tenant' && principal.claims.tenant !== id) {
    throw new DomicileError('FORBIDDEN', 'the token belongs to another tenant');
  }
  const leave = opts.heldSession ? rt.moves.gate.enterNow(id) : await rt.moves.gate.enter(id);
  try {
    const tenant = await getLiveTenant(rt, id);
    // Moved away while the request waited at the fence: relayed to the new owner (app.ts error handler).
    assertOwnedHere(rt, tenant);
    const { readOnly } = authorizeTenant(principal, tenant);
    return { ref: rt.shardRef(tenant), readOnly, durability: tenant.durability, leave };
  } catch (err) {
    leave();
    throw err;
  }
}

/** The data plane (DESIGN §5): one statement, or a batch that is one transaction; both take an optional Idempotency-Key. */
export function dataRoutes(app: FastifyInstance, rt: Runtime): void {
  app.post<{ Params: { id: string }; Body: Statement }>('/v1/tenants/:id/query', { schema: { body: statement } }, async (request, reply) => {
    const idempotencyKey = idempotencyKeyOf(request);
    const target = await tenantAccess(rt, request);
    try {
      const outcome = await runDurable(rt.replicator, target, (readOnly) => rt.pool.queryOutcome(target.ref, request.body, { readOnly, idempotencyKey }));
      rt.cluster?.assertStillServing();
      return answer(reply, outcome);
    } finally {
      target.leave();
    }
  });

  app.post<{ Params: { id: string }; Body: { statements: Statement[] } }>('/v1/tenants/:id/batch', { schema: { body: batchBody } }, async (request, reply) => {
    const idempotencyKey = idempotencyKeyOf(request);
    const target = await tenantAccess(rt, request);
    try {
      const outcome = await runDurable(rt.replicator, target, (readOnly) => rt.pool.batchOutcome(target.ref, request.body.statements, { readOnly, idempotencyKey }));
      rt.cluster?.assertStillServing();
      return { results: answer(reply, outcome) };
    } finally {
      target.leave();
    }
  });
}
