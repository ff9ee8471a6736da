/**
 * `LeanPut`: a PutObject of a body already in memory, built from the AWS
 * SDK's own parts — the client's endpoint rules (resolved once per store),
 * its credentials, its SigV4 signer and its HTTP handler (the same sockets and
 * timeouts) — without the command's middleware stack (serialization schema,
 * per-request endpoint rules, checksum and retry bookkeeping, user agent).
 * Measured with `pnpm bench:object-store` (loadtest/RESULTS.md): that stack
 * was about two thirds of the CPU a 15 KB PutObject cost the node, and a
 * node uploads one object per busy tenant every shipping interval.
 *
 * It makes one attempt and only knows two answers: 200 (stored) and 412
 * (`If-None-Match: *` refused: the object exists). Anything else — another
 * status, a socket error, a timeout — is a `'retry'`: the caller sends the
 * same put through the SDK command, whose retries, error parsing and clock
 * skew correction apply as before (docs/object-store.md, "S3 puts").
 */
import { HttpRequest } from '@smithy/core/protocols';
import { SignatureV4 } from '@smithy/signature-v4';
import type { S3Client } from '@aws-sdk/client-s3';

/** The outcome of one lean attempt. */
export type LeanPutResult = 'stored' | 'exists' | { retry: string };

/** What a lean put needs from an S3 client: its resolved configuration (see {@link LeanPut.forClient}). */
export interface LeanPutClient {
  config: {
    credentials: unknown;
    sha256: unknown;
    systemClockOffset?: number;
    requestHandler: { handle(req: HttpRequest, opts?: object): Promise<{ response: { statusCode: number; body?: unknown } }> };
    endpointProvider(params: Record<string, unknown>): EndpointResolution;
    region(): Promise<string>;
    useFipsEndpoint?(): Promise<boolean>;
    useDualstackEndpoint?(): Promise<boolean>;
  };
}

interface EndpointResolution {
  url: URL;
  properties?: { authSchemes?: { name?: string; signingName?: string; signingRegion?: string }[] };
  headers?: Record<string, unknown>;
}

/** Where a bucket's objects are, as the client's endpoint rules say. */
export interface LeanEndpoint {
  protocol: string;
  hostname: string;
  port: number | undefined;
  /** `host` header value. */
  host: string;
  /** Path before the key, without a trailing slash (`/bucket` path-style, `` virtual-hosted). */
  basePath: string;
  signingName: string;
  signingRegion: string;
}

/**
 * S3's encoding of a key in the request path: each `/`-separated segment with
 * `encodeURIComponent` plus `!'()*` (RFC 3986 reserved), as the SDK does.
 */
export function encodeKeyPath(key: string): string {
  return key.split('/').map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)).join('/');
}

export class LeanPut implements LeanAttempt {
  readonly #client: LeanPutClient;
  readonly #endpoint: LeanEndpoint;
  readonly #signer: SignatureV4;

  private constructor(client: LeanPutClient, endpoint: LeanEndpoint) {
    this.#client = client;
    this.#endpoint = endpoint;
    this.#signer = new SignatureV4({
      credentials: client.config.credentials as ConstructorParameters<typeof SignatureV4>[0]['credentials'],
      region: endpoint.signingRegion,
      service: endpoint.signingName,
      sha256: client.config.sha256 as ConstructorParameters<typeof SignatureV4>[0]['sha256'],
      // S3 signs the path as sent (keys are encoded once), and the payload's SHA-256 (x-amz-content-sha256).
      uriEscapePath: false,
      applyChecksum: true,
    });
  }

  /**
   * A lean put for `bucket` through `client`, or the reason there is none:
   * an endpoint that is not plain SigV4 (S3 Express, multi-region access
   * points) or that needs headers of its own, or an endpoint the SDK takes
   * from the environment (`AWS_ENDPOINT_URL…`) when the store names none.
   */
  static async forClient(client: S3Client | LeanPutClient, opts: { bucket: string; endpoint: string | undefined; forcePathStyle: boolean }): Promise<LeanPut | { unsupported: string }> {
    const c = client as LeanPutClient;
    if (opts.endpoint === undefined && (process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL) !== undefined) {
      return { unsupported: 'the endpoint comes from AWS_ENDPOINT_URL' };
    }
    const region = await c.config.region();
    const ep = c.config.endpointProvider({
      Bucket: opts.bucket,
      Region: region,
      UseFIPS: (await c.config.useFipsEndpoint?.()) ?? false,
      UseDualStack: (await c.config.useDualstackEndpoint?.()) ?? false,
      ForcePathStyle: opts.forcePathStyle,
      Accelerate: false,
      ...(opts.endpoint === undefined ? {} : { Endpoint: opts.endpoint }),
    });
    const scheme = ep.properties?.authSchemes?.[0];
    if (scheme?.name !== 'sigv4') return { unsupported: `the endpoint's auth scheme is ${scheme?.name ?? 'unknown'}` };
    if (ep.headers && Object.keys(ep.headers).length > 0) return { unsupported: 'the endpoint needs headers of its own' };
    const url = ep.url;
    if (url.search !== '') return { unsupported: 'the endpoint has a query' };
    return new LeanPut(c, {
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port === '' ? undefined : Number(url.port),
      host: url.host,
      basePath: url.pathname.replace(/\/+$/, ''),
      signingName: scheme.signingName ?? 's3',
      signingRegion: scheme.signingRegion ?? region,
    });
  }

  get endpoint(): LeanEndpoint {
    return this.#endpoint;
  }

  /** One attempt to store `body` under the full object key `key` (prefix included). */
  async put(key: string, body: Uint8Array, ifNoneMatch: boolean): Promise<LeanPutResult> {
    const e = this.#endpoint;
    const headers: Record<string, string> = {
      host: e.host,
      'content-type': 'application/octet-stream',
      'content-length': String(body.byteLength),
    };
    if (ifNoneMatch) headers['if-none-match'] = '*';
    const request = new HttpRequest({
      method: 'PUT',
      protocol: e.protocol,
      hostname: e.hostname,
      ...(e.port === undefined ? {} : { port: e.port }),
      path: `${e.basePath}/${encodeKeyPath(key)}`,
      headers,
      body,
    });
    let status: number;
    try {
      const signed = await this.#signer.sign(request, { signingDate: new Date(Date.now() + (this.#client.config.systemClockOffset ?? 0)) });
      const { response } = await this.#client.config.requestHandler.handle(signed as HttpRequest);
      status = response.statusCode;
      await drain(response.body);
    } catch (err) {
      return { retry: describeError(err) };
    }
    if (status === 200) return 'stored';
    if (status === 412) return 'exists';
    return { retry: `HTTP ${status}` };
  }
}

/** How a store's puts went (tests and benchmarks). */
export interface S3PutStats {
  /** Puts answered by the lean request (stored, or refused by `If-None-Match`). */
  lean: number;
  /** Puts sent through the SDK command (multipart included), after a failed lean attempt or without one. */
  sdk: number;
  /** Lean attempts that failed and were handed to the SDK command. */
  leanFailures: number;
  /** Why the store makes no lean attempts (any more); undefined while it does. */
  leanOff: string | undefined;
}

/**
 * Lean failures in a row, each followed by a put the SDK command stored,
 * before a store stops making lean attempts (attempts in flight together
 * count once).
 */
export const LEAN_FAILURES_BEFORE_OFF = 3;

/** The part of {@link LeanPut} that {@link LeanPuts} uses (tests pass their own). */
export interface LeanAttempt {
  put(key: string, body: Uint8Array, ifNoneMatch: boolean): Promise<LeanPutResult>;
}

/**
 * When a store tries the lean put, and its counts. The lean put is resolved
 * at the first attempt. A failed attempt suspends the lean path until a put
 * through the command succeeds, so a store that is down costs no extra
 * request per put; after {@link LEAN_FAILURES_BEFORE_OFF} failures in a row
 * (a store that takes the command's puts but not the lean ones) it stays off
 * for the store's life. Attempts that were in flight when one failed count
 * with it, once: one outage is one failure, however many tenants uploaded.
 */
export class LeanPuts {
  readonly #resolve: () => Promise<LeanAttempt | { unsupported: string }>;
  readonly #onFailedOff: ((reason: string) => void) | undefined;
  #lean: Promise<LeanAttempt | null> | undefined;
  #suspended = false;
  #failuresInRow = 0;
  readonly #stats: S3PutStats = { lean: 0, sdk: 0, leanFailures: 0, leanOff: undefined };

  /**
   * `off`: the reason to make no lean attempts at all (`leanPut=false`).
   * `onFailedOff` hears when failures turn the lean path off (not when it
   * was never on).
   */
  constructor(resolve: () => Promise<LeanAttempt | { unsupported: string }>, off?: string, onFailedOff?: (reason: string) => void) {
    this.#resolve = resolve;
    this.#stats.leanOff = off;
    this.#onFailedOff = onFailedOff;
  }

  get stats(): Readonly<S3PutStats> {
    return { ...this.#stats };
  }

  /**
   * Try the lean put: `'stored'`, `'exists'` (a refused `ifNoneMatch`), or
   * null when the command must send it (call {@link commandPut} then).
   */
  async attempt(key: string, body: Uint8Array, ifNoneMatch: boolean): Promise<'stored' | 'exists' | null> {
    if (this.#stats.leanOff !== undefined || this.#suspended) return null;
    this.#lean ??= this.#resolve().then(
      (l) => {
        if ('put' in l) return l;
        this.#stats.leanOff = l.unsupported;
        return null;
      },
      (err: unknown) => {
        this.#stats.leanOff = `no endpoint: ${err instanceof Error ? err.message : String(err)}`;
        return null;
      },
    );
    const lean = await this.#lean;
    if (!lean) return null;
    const r = await lean.put(key, body, ifNoneMatch);
    if (r === 'stored' || r === 'exists') {
      this.#stats.lean++;
      this.#failuresInRow = 0;
      return r;
    }
    this.#stats.leanFailures++;
    // Attempts already in flight when the first of them failed (several tenants' uploads when the server
    // went away) are one failure, not one each: only the failure that suspends the path counts.
    if (this.#suspended) return null;
    this.#suspended = true;
    if (++this.#failuresInRow >= LEAN_FAILURES_BEFORE_OFF) {
      this.#stats.leanOff = `${LEAN_FAILURES_BEFORE_OFF} lean puts failed in a row (last: ${r.retry})`;
      this.#onFailedOff?.(this.#stats.leanOff);
    }
    return null;
  }

  /** A put goes through the command (counted). */
  commandPut(): void {
    this.#stats.sdk++;
  }

  /** A single-request put through the command succeeded: lean attempts may resume. */
  commandStored(): void {
    this.#suspended = false;
  }
}

/** Read a response body to its end (the socket goes back to the pool only then). */
async function drain(body: unknown): Promise<void> {
  if (body === undefined || body === null || typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] !== 'function') return;
  for await (const _ of body as AsyncIterable<unknown>) { /* discard */ }
}

function describeError(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : typeof e?.name === 'string' ? e.name : 'error';
  return typeof e?.message === 'string' && e.message !== '' ? `${code}: ${e.message}` : code;
}
