import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { DomicileError, isDomicileError } from '@domicile/errors';

/**
 * Maps anything thrown in a request to a coded DomicileError: fastify's own errors (bad JSON,
 * oversized bodies, schema validation) get their catalogue code; unknown errors become INTERNAL
 * and are logged with their stack, which never reaches the client.
 */
export function toDomicileError(err: unknown): DomicileError {
  if (isDomicileError(err)) return err as DomicileError;
  const e = err as FastifyError & { validation?: unknown };
  if (e && Array.isArray(e.validation)) {
    const where = (e as { validationContext?: string }).validationContext ?? 'body';
    return new DomicileError('BAD_REQUEST', `${where}: ${e.message.replace(/^(body|querystring|params)\s*/, '')}`);
  }
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new DomicileError('PAYLOAD_TOO_LARGE', 'the request body exceeds DOMICILE_MAX_BODY_BYTES');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new DomicileError('BAD_REQUEST', `the body is not valid JSON: ${e.message}`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new DomicileError('BAD_REQUEST', 'send the body as application/json');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new DomicileError('BAD_REQUEST', 'the content-length does not match the body');
  }
  if (e && typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new DomicileError('BAD_REQUEST', e.message);
  }
  return new DomicileError('INTERNAL', 'internal error', {}, { cause: err });
}

/** Sends a coded error answer (`{"error":{...}}`, Retry-After on 503). */
export function sendError(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const de = toDomicileError(err);
  if (de.code === 'INTERNAL') {
    request.log.error({ err: de.cause ?? err }, 'internal error');
  } else {
    // SQLite messages may echo literals from tenant SQL: log the code, never the message.
    request.log.info({ code: de.code }, 'request refused');
  }
  const retry = de.retryAfterSeconds;
  if (retry !== undefined) void reply.header('retry-after', String(retry));
  return reply.code(de.statusCode).type('application/json').send(de.toJSON());
}
