/**
 * The `Idempotency-Key` request header of `/query` and `/batch` (DESIGN §5;
 * the shard does the rest, packages/shard/src/idempotency.ts).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { IDEMPOTENT_REPLAYED_HEADER, assertIdempotencyKey, type ExecOutcome } from '@domicile/shard';

/** The request's key, undefined without the header; BAD_REQUEST naming the header when it is malformed or repeated. */
export function idempotencyKeyOf(request: FastifyRequest): string | undefined {
  const value = request.headers['idempotency-key'];
  // A repeated header arrives joined with ", " or as an array: both fail the syntax check.
  return value === undefined ? undefined : assertIdempotencyKey(value);
}

/** The outcome's result; a replayed answer is marked with `Idempotent-Replayed: true`. */
export function answer<T>(reply: FastifyReply, outcome: ExecOutcome<T>): T {
  if (outcome.replayed) void reply.header(IDEMPOTENT_REPLAYED_HEADER, 'true');
  return outcome.result;
}
