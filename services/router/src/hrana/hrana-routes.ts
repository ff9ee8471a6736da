/**
 * Hrana over HTTP v2 (DESIGN §5), enough for the unmodified @libsql/client:
 * `POST /v2/pipeline` (tenant tokens only, tenant from `sub`) and
 * `POST /v1/tenants/:id/v2/pipeline` (any token the data routes accept), plus
 * `GET /v2` and `GET /v1/tenants/:id/v2` for version probes. Errors are
 * answered the Hrana way: `{"message","code"}` at top level with content-type
 * exactly `application/json` (the client ignores the body otherwise). See
 * docs/hrana.md.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomicileError } from '@domicile/errors';
import type { ShardRef } from '@domicile/shard';
import { authenticate, authorizeTenant } from '../auth/authenticate.ts';
import { toDomicileError } from '../http-errors.ts';
import type { TenantDurability } from '@domicile/directory';
import { awaitDurable, refuseIfBucketDown } from '../replication/durability.ts';
import { tenantAccess } from '../routes/data-routes.ts';
import type { Runtime } from '../runtime.ts';
import { getLiveTenant } from '../tenant-service.ts';
import { assertOwnedHere, reroutingErrorHandler } from '../cluster/owner-routing.ts';
import { runPipeline } from './hrana-pipeline.ts';
import { HranaStreams, type HranaStream } from './hrana-streams.ts';

/** Requests in one pipeline. */
export const MAX_PIPELINE_REQUESTS = 10_000;

interface PipelineBody {
  baton?: string | null;
  requests: unknown[];
}

/** Registers the Hrana routes; streams are closed (transactions rolled back) when the app closes. */
export function hranaRoutes(app: FastifyInstance, rt: Runtime): void {
  const streams = new HranaStreams(rt.pool, rt.config.sessionIdleTimeoutMs);
  app.addHook('onClose', async () => streams.closeAll());
  // A move's fence: open transactions get the grace period, then roll back with TENANT_MOVING (DESIGN §9).
  rt.moves.onFence(async (tenant, graceMs) => {
    await streams.endSessions(tenant, graceMs, new DomicileError('TENANT_MOVING', 'the tenant is being moved; the open transaction was rolled back — retry it', { tenant }));
  });
  const errorHandler = reroutingErrorHandler(rt, sendHranaError);

  const pipeline = async (request: FastifyRequest, reply: FastifyReply, access: { tenant: string; ref: ShardRef; readOnly: boolean; durability: TenantDurability }) => {
    const body = parseBody(request.body);
    refuseIfBucketDown(rt.replicator, access);
    let stream: HranaStream;
    if (typeof body.baton === 'string') {
      stream = streams.claim(body.baton, access.tenant);
      if (stream.ref.incarnation !== access.ref.incarnation) {
        await streams.close(stream);
        throw new DomicileError('BAD_REQUEST', 'the tenant was re-created; open a new stream');
      }
      // Moved since the stream's last request (a stream without a transaction follows the tenant).
      if (stream.ref.path !== access.ref.path || stream.ref.epoch !== access.ref.epoch) stream.ref = access.ref;
    } else {
      stream = streams.create(access.tenant, access.ref);
    }
    let results;
    try {
      results = await runPipeline({
        pool: rt.pool,
        readOnly: access.readOnly,
        closeStream: (s) => streams.close(s),
        logInternal: (err) => request.log.error({ err }, 'internal error in a Hrana request'),
      }, stream, body.requests);
    } catch (err) {
      await streams.close(stream);
      throw err;
    }
    // The stream keeps its transaction (and gets a new baton), or is forgotten.
    const baton = await streams.release(stream);
    // Sync tenants (DESIGN §8): answered once what the pipeline committed is in the bucket.
    await awaitDurable(rt.replicator, access);
    rt.cluster?.assertStillServing();
    return sendJson(reply, 200, { baton, base_url: null, results });
  };

  app.post<{ Params: { id: string } }>('/v1/tenants/:id/v2/pipeline', { errorHandler }, async (request, reply) => {
    const heldSession = streams.holdsSession((request.body as { baton?: unknown } | undefined)?.baton, request.params.id);
    const { ref, readOnly, durability, leave } = await tenantAccess(rt, request, { heldSession });
    try {
      return await pipeline(request, reply, { tenant: ref.tenant, ref, readOnly, durability });
    } finally {
      leave();
    }
  });

  app.post('/v2/pipeline', { errorHandler }, async (request, reply) => {
    const principal = await authenticate(rt, request);
    if (principal.kind !== 'tenant') {
      throw new DomicileError('FORBIDDEN', '/v2/pipeline takes tenant tokens; admin tokens use /v1/tenants/:id/v2/pipeline');
    }
    const id = principal.claims.tenant;
    request.log = request.log.child({ tenant: id });
    const heldSession = streams.holdsSession((request.body as { baton?: unknown } | undefined)?.baton, id);
    const leave = heldSession ? rt.moves.gate.enterNow(id) : await rt.moves.gate.enter(id);
    try {
      const tenant = await getLiveTenant(rt, id);
      assertOwnedHere(rt, tenant);
      const { readOnly } = authorizeTenant(principal, tenant);
      const ref = rt.shardRef(tenant);
      return await pipeline(request, reply, { tenant: id, ref, readOnly, durability: tenant.durability });
    } finally {
      leave();
    }
  });

  // Version probes: Hrana over HTTP v2 is served here (no v3, so clients fall back to v2).
  app.get('/v2', { errorHandler }, async (_request, reply) => sendJson(reply, 200, { version: 2 }));
  app.get<{ Params: { id: string } }>('/v1/tenants/:id/v2', { errorHandler }, async (_request, reply) => sendJson(reply, 200, { version: 2 }));
}

function parseBody(body: unknown): PipelineBody {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new DomicileError('BAD_REQUEST', 'the body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (b.baton !== undefined && b.baton !== null && typeof b.baton !== 'string') throw new DomicileError('BAD_REQUEST', 'baton must be a string or null');
  if (!Array.isArray(b.requests)) throw new DomicileError('BAD_REQUEST', 'requests must be an array');
  if (b.requests.length > MAX_PIPELINE_REQUESTS) throw new DomicileError('BAD_REQUEST', `a pipeline takes at most ${MAX_PIPELINE_REQUESTS} requests`);
  return b as unknown as PipelineBody;
}

/**
 * JSON with content-type exactly `application/json`: @libsql/client reads an
 * error body only then. Fastify appends `; charset=utf-8` to a string or object
 * payload (even with the header set), never to a Buffer.
 */
function sendJson(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).header('content-type', 'application/json').send(Buffer.from(JSON.stringify(body), 'utf8'));
}

/** A whole-request error, Hrana-shaped: `{"message","code"}` (Retry-After on 503). */
export function sendHranaError(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const de = toDomicileError(err);
  if (de.code === 'INTERNAL') request.log.error({ err: de.cause ?? err }, 'internal error');
  else request.log.info({ code: de.code }, 'request refused');
  const retry = de.retryAfterSeconds;
  if (retry !== undefined) void reply.header('retry-after', String(retry));
  return sendJson(reply, de.statusCode, { message: de.message, code: de.code });
}
