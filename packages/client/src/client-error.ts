import { DomicileError, ERROR_CATALOGUE, type ErrorCode, type ErrorDetails } from '@domicile/errors';

/**
 * A DomicileError raised by the client: the server's code, message and
 * details, plus the HTTP `status` it answered with (undefined when no answer
 * arrived). Classify by `code`; `status === undefined` tells "unreachable"
 * apart from a server that answered 503.
 */
export class DomicileClientError extends DomicileError {
  /** HTTP status of the answer; undefined for network failures and timeouts. */
  readonly status: number | undefined;

  constructor(code: ErrorCode, message: string, details: ErrorDetails, status: number | undefined, cause?: unknown) {
    super(code, message, details, cause === undefined ? undefined : { cause });
    this.name = 'DomicileClientError';
    this.status = status;
  }
}

/** True when the error means no answer arrived (connection refused, DNS, reset, timeout). */
export function isUnreachable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'NODE_UNAVAILABLE'
    && (err as { status?: unknown }).status === undefined;
}

function knownCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CATALOGUE, code);
}

/**
 * The error of a non-2xx answer. A contract body `{error:{code,message,...}}`
 * keeps its code (an unknown code becomes INTERNAL with the original in
 * `details.serverCode`); a body that is not ours (a proxy's HTML page) maps by
 * status: 502/503/504 to NODE_UNAVAILABLE, anything else to INTERNAL.
 */
export async function errorFromResponse(res: Response, url: string): Promise<DomicileClientError> {
  const text = await res.text().catch(() => '');
  const retryAfter = parseRetryAfter(res.headers.get('retry-after'));
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  const e = typeof body === 'object' && body !== null ? (body as { error?: unknown }).error : undefined;
  if (typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string') {
    const { code, message, ...details } = e as { code: string; message?: unknown } & ErrorDetails;
    if (retryAfter !== undefined && details.retryAfter === undefined) details.retryAfter = retryAfter;
    const msg = typeof message === 'string' ? message : `${code} (HTTP ${res.status})`;
    if (knownCode(code)) return new DomicileClientError(code, msg, details, res.status);
    return new DomicileClientError('INTERNAL', msg, { ...details, serverCode: code }, res.status);
  }
  const details: ErrorDetails = { url, status: res.status };
  if (retryAfter !== undefined) details.retryAfter = retryAfter;
  if (text !== '') details.body = text.slice(0, 200);
  const gateway = res.status === 502 || res.status === 503 || res.status === 504;
  return new DomicileClientError(gateway ? 'NODE_UNAVAILABLE' : 'INTERNAL',
    `unexpected HTTP ${res.status} ${res.statusText} from ${url}`.trimEnd(), details, res.status);
}

/** The error of a request that got no answer. */
export function networkError(url: string, cause: unknown, timeoutMs: number): DomicileClientError {
  const timedOut = cause instanceof Error && (cause.name === 'TimeoutError' || cause.name === 'AbortError');
  const reason = timedOut ? `no answer within ${timeoutMs} ms` : describeCause(cause);
  return new DomicileClientError('NODE_UNAVAILABLE', `cannot reach ${url}: ${reason}`,
    timedOut ? { url, timeoutMs } : { url }, undefined, cause);
}

/** The system error code (ECONNREFUSED, ENOTFOUND, ...) somewhere in a fetch failure's cause chain. */
export function systemCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; typeof e === 'object' && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const c = (e as { code?: unknown }).code;
    if (typeof c === 'string' && /^E[A-Z]+$/.test(c)) return c;
  }
  return undefined;
}

function describeCause(cause: unknown): string {
  const code = systemCode(cause);
  if (code !== undefined) return code === 'ECONNREFUSED' ? 'connection refused' : code;
  let e: unknown = cause;
  while (typeof e === 'object' && e !== null && (e as { cause?: unknown }).cause !== undefined) e = (e as { cause: unknown }).cause;
  return e instanceof Error ? e.message : String(cause);
}

function parseRetryAfter(h: string | null): number | undefined {
  if (h === null || !/^\s*\d+\s*$/.test(h)) return undefined;
  return Number(h);
}
