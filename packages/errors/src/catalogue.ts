/**
 * The one catalogue of Domicile's error codes (DESIGN §5). Codes are a public
 * contract: new ones may be added, none renamed. docs/errors.md documents each
 * one; `catalogue.test.ts` checks both directions.
 */
export const ERROR_CATALOGUE = Object.freeze({
  BAD_REQUEST: { status: 400, message: 'The request is malformed.' },
  INVALID_TENANT_ID: { status: 400, message: 'Tenant ids match ^[a-z0-9][a-z0-9_-]{0,62}$.' },
  SQL_ERROR: { status: 400, message: 'SQLite rejected the statement.' },
  RESULT_TOO_LARGE: { status: 400, message: 'The result exceeds the response size cap.' },
  UNAUTHORIZED: { status: 401, message: 'A valid bearer token is required.' },
  FORBIDDEN: { status: 403, message: 'The token does not allow this request.' },
  STATEMENT_NOT_ALLOWED: { status: 403, message: 'The statement is not allowed for tenant SQL.' },
  NOT_FOUND: { status: 404, message: 'Not found.' },
  TENANT_NOT_FOUND: { status: 404, message: 'No such tenant.' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'The route does not accept this method.' },
  QUERY_TIMEOUT: { status: 408, message: 'The statement ran past the statement timeout and was interrupted.' },
  TENANT_EXISTS: { status: 409, message: 'A tenant with this id exists.' },
  MOVE_IN_PROGRESS: { status: 409, message: 'The tenant is being moved.' },
  RESTORE_IN_PROGRESS: { status: 409, message: 'A restore of the tenant is running.' },
  POLICY_MISMATCH: { status: 409, message: 'Nodes disagree on the placement policy.' },
  SCHEMA_CONFLICT: { status: 409, message: 'The migration list conflicts with the stored or applied migrations.' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body exceeds the size cap.' },
  POLICY_VIOLATION: { status: 422, message: 'The placement policy forbids this.' },
  IDEMPOTENCY_KEY_REUSED: { status: 422, message: 'The Idempotency-Key was used for a different request.' },
  INTERNAL: { status: 500, message: 'Internal error.' },
  BACKUP_INVALID: { status: 500, message: 'A backup object is missing or corrupt.' },
  TENANT_MOVING: { status: 503, message: 'The tenant is being moved; retry shortly.' },
  NODE_UNAVAILABLE: { status: 503, message: 'No live node serves the region.' },
  REPLICATION_UNAVAILABLE: { status: 503, message: 'The region bucket is unavailable.' },
  DIRECTORY_UNAVAILABLE: { status: 503, message: 'The tenant directory is unavailable.' },
  OVERLOADED: { status: 503, message: 'The node is overloaded; retry shortly.' },
  QUOTA_EXCEEDED: { status: 507, message: 'The tenant database reached its size cap, or the node disk is full.' },
} as const);

/** A stable, documented error code. */
export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** Every code, in catalogue order. */
export const ERROR_CODES = Object.freeze(Object.keys(ERROR_CATALOGUE) as ErrorCode[]);

/** Seconds suggested in `Retry-After` for every 503 unless the thrower names another. */
export const DEFAULT_RETRY_AFTER_SECONDS = 1;
