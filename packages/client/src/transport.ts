import { DomicileClientError, errorFromResponse, networkError, systemCode } from './client-error.ts';
import { RouteCache, type Route } from './route-cache.ts';

/** The smallest shape of `fetch` the client needs (Node 20's global fetch fits). */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** One API call, before routing. */
export interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** API path such as `/v1/tenants/acme/query`, already escaped. */
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** JSON-serialized when present. */
  body?: unknown;
  /** The tenant the call is about: enables the route cache for it. */
  tenant?: string;
  headers?: Record<string, string>;
}

/** Settings of a transport; see DomicileClientOptions for their meaning. */
export interface TransportOptions {
  url: string;
  token: string | undefined;
  fetch: FetchLike;
  timeoutMs: number;
  maxRedirects: number;
}

// A connection that was never established sent nothing, so retrying it
// elsewhere cannot execute a request twice.
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** Module-private signal: the cached owner refused the connection, so nothing was sent. */
class StaleRoute extends Error {}

/**
 * Sends API calls: routing by the tenant route cache, following Domicile's
 * 307 redirects with the same method, body and Authorization, and turning
 * every failure into a DomicileClientError.
 */
export class Transport {
  readonly #base: string;
  readonly #opts: TransportOptions;
  /** Tenant → owner learned from redirects. */
  readonly routes = new RouteCache();

  constructor(opts: TransportOptions) {
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch (cause) {
      throw new DomicileClientError('BAD_REQUEST', `invalid url ${JSON.stringify(opts.url)}`, { url: opts.url }, undefined, cause);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new DomicileClientError('BAD_REQUEST', `url must be http:// or https://, got ${opts.url}`, { url: opts.url }, undefined);
    }
    this.#base = (u.origin + u.pathname).replace(/\/+$/, '');
    this.#opts = opts;
  }

  /** The configured base URL, without a trailing slash. */
  get baseUrl(): string {
    return this.#base;
  }

  /** Perform a call and return its parsed JSON body (text when the answer is not JSON, undefined when empty). */
  async request<T>(spec: RequestSpec): Promise<T> {
    const rel = spec.path + queryString(spec.query);
    const cached = spec.tenant === undefined ? undefined : this.routes.get(spec.tenant);
    if (cached === undefined) return this.#send<T>(spec, this.#base + rel, false);
    try {
      return await this.#send<T>(spec, cached.base + rel, true);
    } catch (err) {
      // A cached owner that is gone (node stopped, tenant moved) must not strand
      // the tenant: start over at the configured node, which knows the new owner.
      if (err instanceof StaleRoute) return this.#send<T>(spec, this.#base + rel, false);
      throw err;
    }
  }

  async #send<T>(spec: RequestSpec, firstUrl: string, viaCache: boolean): Promise<T> {
    const { timeoutMs, maxRedirects } = this.#opts;
    const signal = timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined;
    const body = spec.body === undefined ? undefined : JSON.stringify(spec.body);
    const tenant = spec.tenant;
    let url = firstUrl;
    let sendAuth = true;
    let routed = viaCache;
    for (let hop = 0; ; hop++) {
      let res: Response;
      try {
        res = await this.#opts.fetch(url, {
          method: spec.method,
          headers: this.#headers(spec, body !== undefined, sendAuth),
          body,
          redirect: 'manual',
          ...(signal === undefined ? {} : { signal }),
        });
      } catch (cause) {
        if (tenant !== undefined && routed) {
          this.routes.delete(tenant);
          if (hop === 0 && viaCache && NOT_CONNECTED.has(systemCode(cause) ?? '')) throw new StaleRoute();
        }
        throw networkError(url, cause, timeoutMs);
      }

      if (res.status === 307 || res.status === 308) {
        const location = res.headers.get('location');
        await res.body?.cancel().catch(() => undefined);
        if (location === null || location === '') {
          if (tenant !== undefined) this.routes.delete(tenant);
          throw new DomicileClientError('INTERNAL', `redirect from ${url} without a Location`, { url }, res.status);
        }
        if (hop >= maxRedirects) {
          if (tenant !== undefined) this.routes.delete(tenant);
          throw new DomicileClientError('NODE_UNAVAILABLE',
            `gave up after ${maxRedirects} redirects (last ${url} → ${location}); the tenant's owner is changing, retry shortly`,
            { url, location, redirects: maxRedirects }, res.status);
        }
        const next = new URL(location, url);
        const route = domicileRoute(res.headers, next, spec.path);
        // Authorization follows only redirects that Domicile itself made (it
        // names the owner) or that stay on the same origin, so a foreign proxy
        // cannot harvest the token by redirecting.
        sendAuth = sendAuth && (route !== undefined || next.origin === new URL(url).origin);
        if (tenant !== undefined) {
          if (route !== undefined) this.routes.set(tenant, route);
          else this.routes.delete(tenant);
          routed = route !== undefined;
        }
        url = next.href;
        continue;
      }

      if (!res.ok) {
        if (tenant !== undefined && routed) this.routes.delete(tenant);
        throw await errorFromResponse(res, url);
      }
      return (await readBody(res)) as T;
    }
  }

  #headers(spec: RequestSpec, hasBody: boolean, sendAuth: boolean): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json', ...spec.headers };
    if (hasBody) h['content-type'] = 'application/json';
    if (sendAuth && this.#opts.token !== undefined && this.#opts.token !== '') h.authorization = `Bearer ${this.#opts.token}`;
    return h;
  }
}

function queryString(q: RequestSpec['query']): string {
  if (q === undefined) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) p.set(k, String(v));
  const s = p.toString();
  return s === '' ? '' : `?${s}`;
}

// The owner's base URL: the Location minus the API path, so a node mounted
// under a path prefix keeps it.
function domicileRoute(h: Headers, next: URL, apiPath: string): Route | undefined {
  const node = h.get('domicile-node');
  const region = h.get('domicile-region');
  const epoch = h.get('domicile-epoch');
  if (node === null && region === null && epoch === null) return undefined;
  const base = next.pathname.endsWith(apiPath) ? next.origin + next.pathname.slice(0, next.pathname.length - apiPath.length) : next.origin;
  return {
    base: base.replace(/\/+$/, ''),
    ...(node === null ? {} : { node }),
    ...(region === null ? {} : { region }),
    ...(epoch === null || !/^\d+$/.test(epoch) ? {} : { epoch: Number(epoch) }),
  };
}

async function readBody(res: Response): Promise<unknown> {
  const text = await res.text();
  if (text === '') return undefined;
  const type = res.headers.get('content-type') ?? '';
  if (type.includes('json') || /^\s*[{[]/.test(text)) {
    try {
      return JSON.parse(text);
    } catch (cause) {
      throw new DomicileClientError('INTERNAL', `invalid JSON from ${res.url || 'the server'}`, { body: text.slice(0, 200) }, res.status, cause);
    }
  }
  return text;
}
