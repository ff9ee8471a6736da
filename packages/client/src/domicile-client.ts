import { DomicileError, ERROR_CATALOGUE, type ErrorCode } from '@domicile/errors';
import { DomicileClientError } from './client-error.ts';
import { Transport, type FetchLike } from './transport.ts';
import type {
  ApplySchemaRequest, AuditOptions, AuditPage, BackupsResult, BatchResult, CreateTenantRequest, CreateTokenRequest,
  EraseResult, JsonObject, ListTenantsOptions, Migration, MoveRequest, MoveStatus, QueryResult, ResidencyAudit,
  RestoreRequest, RestoreResult, RevokeResult, Statement, Tenant, TenantDetail, TenantPage, TokenResult, WriteOptions,
} from './types.ts';
import type { PutSchemaResult, SchemaJob, SchemaList } from './types.ts';
import { encodeParams, type Params } from './values.ts';

/** Settings of a DomicileClient. */
export interface DomicileClientOptions {
  /** Any node of the cluster, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  url: string;
  /** Admin token, or a tenant token for the data plane. */
  token?: string;
  /** Replacement for the global fetch (tests, custom agents). */
  fetch?: FetchLike;
  /** Whole-request limit including redirects; 0 disables. Default 30 000. */
  timeoutMs?: number;
  /** Redirect hops followed per request. Default 3. */
  maxRedirects?: number;
  /** Pause between polls of `waitForMove`. Default 250. */
  pollIntervalMs?: number;
}

const FINAL_PHASES = new Set(['done', 'aborted']);

/**
 * Typed client of Domicile's JSON API (DESIGN §5). Every method resolves with
 * the parsed answer or rejects with a DomicileClientError carrying the
 * server's code; classify by `code`. Redirects between nodes are followed with
 * the token and remembered per tenant.
 */
export class DomicileClient {
  readonly #t: Transport;
  readonly #pollIntervalMs: number;

  constructor(opts: DomicileClientOptions) {
    this.#t = new Transport({
      url: opts.url,
      token: opts.token,
      fetch: opts.fetch ?? ((input, init) => globalThis.fetch(input, init)),
      timeoutMs: opts.timeoutMs ?? 30_000,
      maxRedirects: opts.maxRedirects ?? 3,
    });
    this.#pollIntervalMs = opts.pollIntervalMs ?? 250;
  }

  /** The configured node's base URL, without a trailing slash. */
  get url(): string {
    return this.#t.baseUrl;
  }

  /** The owner's base URL cached for a tenant after a redirect, if any. */
  cachedRoute(tenant: string): string | undefined {
    return this.#t.routes.get(tenant)?.base;
  }

  /** Forget every cached tenant route. */
  forgetRoutes(): void {
    this.#t.routes.clear();
  }

  // ---- admin plane: tenants --------------------------------------------------

  /** Create a tenant; 409 TENANT_EXISTS, 422 POLICY_VIOLATION, 503 NODE_UNAVAILABLE. */
  createTenant(req: CreateTenantRequest): Promise<Tenant> {
    return this.#t.request({ method: 'POST', path: '/v1/tenants', body: req, tenant: req.id });
  }

  /** A tenant's placement and replication state; 404 TENANT_NOT_FOUND. */
  getTenant(id: string): Promise<TenantDetail> {
    return this.#t.request({ method: 'GET', path: tenantPath(id), tenant: id });
  }

  /** One page of tenants; pass `nextCursor` back as `cursor` for the next one. */
  listTenants(opts: ListTenantsOptions = {}): Promise<TenantPage> {
    return this.#t.request({ method: 'GET', path: '/v1/tenants', query: { ...opts } });
  }

  /** Every tenant matching the filters, page after page (`limit` is the page size). */
  async *allTenants(opts: Omit<ListTenantsOptions, 'cursor'> & { cursor?: string } = {}): AsyncGenerator<Tenant, void, undefined> {
    yield* paginate(opts.cursor, (cursor) => this.listTenants({ ...opts, cursor }), (p) => p.tenants);
  }

  /** Erase a tenant everywhere: shard, WAL, every bucket object of every generation in every region. */
  eraseTenant(id: string): Promise<EraseResult> {
    return this.#t.request({ method: 'DELETE', path: tenantPath(id), tenant: id });
  }

  /** Issue a tenant token (JWT). */
  createToken(id: string, req: CreateTokenRequest): Promise<TokenResult> {
    return this.#t.request({ method: 'POST', path: `${tenantPath(id)}/tokens`, body: req, tenant: id });
  }

  /** Revoke every token of a tenant issued until now. */
  revokeTokens(id: string): Promise<RevokeResult> {
    return this.#t.request({ method: 'POST', path: `${tenantPath(id)}/tokens/revoke`, body: {}, tenant: id });
  }

  // ---- data plane ------------------------------------------------------------

  /** Run one statement. Params may be native (bigint, Uint8Array, boolean) or wire values. */
  query(tenant: string, sql: string, params?: Params, opts: WriteOptions = {}): Promise<QueryResult> {
    const body = params === undefined ? { sql } : { sql, params: encodeParams(params) };
    return this.#t.request({ method: 'POST', path: `${tenantPath(tenant)}/query`, body, tenant, headers: idempotency(opts) });
  }

  /** Run statements as one transaction, all or nothing; a failure carries `details.statementIndex`. */
  batch(tenant: string, statements: readonly Statement[], opts: WriteOptions = {}): Promise<BatchResult> {
    const body = {
      statements: statements.map((s) => (s.params === undefined ? { sql: s.sql } : { sql: s.sql, params: encodeParams(s.params) })),
    };
    return this.#t.request({ method: 'POST', path: `${tenantPath(tenant)}/batch`, body, tenant, headers: idempotency(opts) });
  }

  // ---- moves, restore, backups -------------------------------------------------

  /** Start moving a tenant to another region; resolves with the move id once accepted (202). */
  moveTenant(id: string, req: MoveRequest): Promise<{ moveId: string }> {
    return this.#t.request({ method: 'POST', path: `${tenantPath(id)}/move`, body: req, tenant: id });
  }

  /** A move's current phase and progress; 404 NOT_FOUND. */
  getMove(moveId: string): Promise<MoveStatus> {
    return this.#t.request({ method: 'GET', path: `/v1/moves/${encodeURIComponent(moveId)}` });
  }

  /**
   * Poll a move until it ends. Resolves with the final status when done;
   * rejects with the move's own error (its code, `details.move` = the status)
   * when it aborts. `onProgress` sees every polled status, the last included.
   */
  async waitForMove(moveId: string, onProgress?: (status: MoveStatus) => void): Promise<MoveStatus> {
    for (;;) {
      const status = await this.getMove(moveId);
      onProgress?.(status);
      if (FINAL_PHASES.has(status.phase)) {
        if (status.phase === 'done') return status;
        throw moveError(status);
      }
      await new Promise((r) => setTimeout(r, this.#pollIntervalMs));
    }
  }

  /** Restore a tenant to a time or txid, in place or (`as`) into a new tenant. */
  restore(id: string, req: RestoreRequest): Promise<RestoreResult> {
    const body: JsonObject = {};
    if (req.at !== undefined) body.at = req.at instanceof Date ? req.at.toISOString() : req.at;
    if (req.txid !== undefined) body.txid = req.txid;
    if (req.as !== undefined) body.as = req.as;
    return this.#t.request({ method: 'POST', path: `${tenantPath(id)}/restore`, body, tenant: id });
  }

  /** A tenant's backup generations. */
  backups(id: string): Promise<BackupsResult> {
    return this.#t.request({ method: 'GET', path: `${tenantPath(id)}/backups`, tenant: id });
  }

  // ---- audit and cluster ---------------------------------------------------------

  /** One page of the audit log. */
  audit(opts: AuditOptions = {}): Promise<AuditPage> {
    return this.#t.request({ method: 'GET', path: '/v1/audit', query: { ...opts } });
  }

  /** Every tenant's stored bytes by region, and every residency violation. */
  residencyAudit(): Promise<ResidencyAudit> {
    return this.#t.request({ method: 'GET', path: '/v1/audit/residency' });
  }

  /** Public aggregates: regions, nodes, tenant counts, lag, moves in progress. */
  status(): Promise<JsonObject> {
    return this.#t.request({ method: 'GET', path: '/v1/status' });
  }

  /** The placement policy the node runs, with its hash. */
  policy(): Promise<JsonObject> {
    return this.#t.request({ method: 'GET', path: '/v1/policy' });
  }

  /** Regions, nodes, health, policy hashes and tenant counts of the cluster. */
  cluster(): Promise<JsonObject> {
    return this.#t.request({ method: 'GET', path: '/v1/cluster' });
  }

  /** `GET /healthz`: resolves when the node is alive (with its answer), rejects otherwise. */
  health(): Promise<unknown> {
    return this.#t.request({ method: 'GET', path: '/healthz' });
  }

  // ---- schema fan-out -------------------------------------------------------------

  /** Store the cluster's ordered migration list (append-only). */
  putSchema(migrations: readonly Migration[]): Promise<PutSchemaResult> {
    return this.#t.request({ method: 'PUT', path: '/v1/schema', body: { migrations } });
  }

  /** Start applying the stored migrations; resolves with the job id. */
  applySchema(req: ApplySchemaRequest = {}): Promise<{ jobId: string }> {
    return this.#t.request({ method: 'POST', path: '/v1/schema/apply', body: req });
  }

  /** Progress and per-tenant failures of a schema job. */
  getSchemaJob(jobId: string): Promise<SchemaJob> {
    return this.#t.request({ method: 'GET', path: `/v1/schema/jobs/${encodeURIComponent(jobId)}` });
  }

  /** The cluster's stored migration list, in order. */
  getSchema(): Promise<SchemaList> {
    return this.#t.request({ method: 'GET', path: '/v1/schema' });
  }

  /** Poll a schema job until it is done; resolves with the final status (failures included: check `failed`). */
  async waitForSchemaJob(jobId: string, onProgress?: (job: SchemaJob) => void): Promise<SchemaJob> {
    for (;;) {
      const job = await this.getSchemaJob(jobId);
      onProgress?.(job);
      if (job.state === 'done') return job;
      await new Promise((r) => setTimeout(r, this.#pollIntervalMs));
    }
  }
}

function tenantPath(id: string): string {
  return `/v1/tenants/${encodeURIComponent(id)}`;
}

function idempotency(opts: WriteOptions): Record<string, string> {
  return opts.idempotencyKey === undefined ? {} : { 'idempotency-key': opts.idempotencyKey };
}

/** Follow `nextCursor` until the server stops returning one; a repeated cursor is a server bug, not a loop. */
export async function* paginate<P extends { nextCursor?: string | null }, I>(
  start: string | undefined, page: (cursor: string | undefined) => Promise<P>, items: (p: P) => readonly I[],
): AsyncGenerator<I, void, undefined> {
  const seen = new Set<string>();
  let cursor = start;
  for (;;) {
    const p = await page(cursor);
    yield* items(p);
    const next = p.nextCursor;
    if (next === undefined || next === null || next === '') return;
    if (seen.has(next)) throw new DomicileError('INTERNAL', `the server repeated cursor ${next}`, { cursor: next });
    seen.add(next);
    cursor = next;
  }
}

function moveError(status: MoveStatus): DomicileClientError {
  const e = status.error;
  const code = e !== undefined && typeof e.code === 'string' && isCode(e.code) ? e.code : 'INTERNAL';
  const message = e?.message ?? `move ${status.moveId} aborted`;
  // The status the server gives an aborted `?wait=1` move: the error's own.
  return new DomicileClientError(code, message, { move: status }, ERROR_CATALOGUE[code].status);
}

function isCode(c: string): c is ErrorCode {
  return Object.hasOwn(ERROR_CATALOGUE, c);
}
