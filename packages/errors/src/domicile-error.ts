import { DEFAULT_RETRY_AFTER_SECONDS, ERROR_CATALOGUE, type ErrorCode } from './catalogue.ts';

/** Extra fields carried to the client beside `code` and `message` (e.g. `statementIndex`, `sqliteCode`). */
export type ErrorDetails = Record<string, unknown>;

/** Plain shape of a DomicileError, safe to post between threads and to send over HTTP. */
export interface SerializedError {
  code: ErrorCode;
  message: string;
  details?: ErrorDetails;
}

/**
 * The one error class of Domicile. Classify by `code`, never by `instanceof`
 * (workspace package copies break `instanceof`; errors also cross worker threads).
 */
export class DomicileError extends Error {
  /** Stable code from the catalogue. */
  readonly code: ErrorCode;
  /** HTTP status from the catalogue. */
  readonly statusCode: number;
  /** Extra fields for the client. */
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message?: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message ?? ERROR_CATALOGUE[code].message, options);
    this.name = 'DomicileError';
    this.code = code;
    this.statusCode = ERROR_CATALOGUE[code].status;
    this.details = details;
  }

  /** Seconds for the `Retry-After` header: set for every 503. */
  get retryAfterSeconds(): number | undefined {
    if (this.statusCode !== 503) return undefined;
    const v = this.details.retryAfter;
    return typeof v === 'number' && v > 0 ? v : DEFAULT_RETRY_AFTER_SECONDS;
  }

  /** Body of an HTTP error answer: `{error:{code,message,...details}}`. */
  toJSON(): { error: Record<string, unknown> } {
    return { error: { code: this.code, message: this.message, ...this.details } };
  }

  /** Plain form for postMessage. */
  serialize(): SerializedError {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** True when `err` carries a Domicile code (works across package copies and threads). */
export function isDomicileError(err: unknown): err is DomicileError {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string'
    && Object.hasOwn(ERROR_CATALOGUE, (err as { code: string }).code)
    && typeof (err as { statusCode?: unknown }).statusCode === 'number';
}

/** Rebuild a DomicileError from its serialized form (e.g. after postMessage). */
export function deserializeError(s: SerializedError): DomicileError {
  const code = Object.hasOwn(ERROR_CATALOGUE, s.code) ? s.code : 'INTERNAL';
  return new DomicileError(code, s.message, s.details ?? {});
}

/** Shorthand constructor. */
export function domicileError(code: ErrorCode, message?: string, details?: ErrorDetails, cause?: unknown): DomicileError {
  return new DomicileError(code, message, details, cause === undefined ? undefined : { cause });
}
