/**
 * Syntax of the `Idempotency-Key` header (DESIGN §5). Pure, so the router and
 * the pool check keys without loading anything of SQLite; what a key does in
 * the shard is idempotency.ts.
 */
import { DomicileError } from '@domicile/errors';

/** Name of the request header (HTTP names are case-insensitive). */
export const IDEMPOTENCY_KEY_HEADER = 'Idempotency-Key';

/** Name of the response header set on an answer replayed from a record. */
export const IDEMPOTENT_REPLAYED_HEADER = 'Idempotent-Replayed';

/** 1–255 visible ASCII characters (`%x21-7E`): no spaces, no control or non-ASCII bytes. */
export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/** How long a recorded outcome answers retries: 24 h (DESIGN §5). */
export const DEFAULT_IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

/** The key itself, or BAD_REQUEST naming the header (`details.field`) when it is not 1–255 visible ASCII characters. */
export function assertIdempotencyKey(key: unknown): string {
  if (typeof key !== 'string' || !IDEMPOTENCY_KEY_PATTERN.test(key)) {
    throw new DomicileError(
      'BAD_REQUEST',
      `the ${IDEMPOTENCY_KEY_HEADER} header must be one value of 1 to 255 visible ASCII characters (no spaces)`,
      { field: IDEMPOTENCY_KEY_HEADER },
    );
  }
  return key;
}
