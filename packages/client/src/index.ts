/**
 * @domicile/client — typed client of Domicile's JSON API (DESIGN §5).
 * Errors are DomicileErrors: classify them by `code`, never by `instanceof`.
 */
export { DomicileClient, paginate, type DomicileClientOptions } from './domicile-client.ts';
export { DomicileClientError, isUnreachable } from './client-error.ts';
export type { FetchLike } from './transport.ts';
export type { Route } from './route-cache.ts';
export { blob, decodeRows, decodeValue, encodeParams, encodeValue, int } from './values.ts';
export type { ParamValue, Params, Value, WireBlob, WireInt, WireValue } from './values.ts';
export type * from './types.ts';
export { isDomicileError, type ErrorCode } from '@domicile/errors';
