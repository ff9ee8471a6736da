/**
 * Routing in a cluster (DESIGN §2, §4 `transit`, §5 "Redirects"): any node
 * accepts any request; a request for a tenant owned by another node is relayed
 * to the owner when the tenant's residency allows transit through this node's
 * region, and otherwise answered `307` with `Location` on the owner and the
 * `Domicile-Region`/`Domicile-Node`/`Domicile-Epoch` headers — so no tenant
 * data crosses a border the policy forbids. The caller is authenticated here
 * first (a stranger learns nothing of the placement) and again by the owner.
 *
 * A relayed request carries `Domicile-Forwarded-By` (the nodes it passed). It
 * is relayed at most twice — the second time only when the owner it reached
 * handed the tenant on while it waited (a move's fence) — and never back to a
 * node it passed: otherwise the client gets 503 TENANT_MOVING to retry.
 */
import { existsSync } from 'node:fs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { NodeInfo, TenantRecord } from '@domicile/directory';
import { DomicileError, isDomicileError } from '@domicile/errors';
import { transitAllowed } from '@domicile/policy';
import { authenticate } from '../auth/authenticate.ts';
import type { Runtime } from '../runtime.ts';
import { assertTenantId } from '../tenant-service.ts';
import { protocolMajor, CLUSTER_PROTOCOL_VERSION, type ClusterNode } from './cluster-node.ts';

/** Header a relaying node adds: the ids of the nodes the request passed, comma-separated. */
export const FORWARDED_BY = 'domicile-forwarded-by';
/**
 * Relays one request may take: the first node to the owner it knew, and once
 * more when that owner handed the tenant on while the request waited at its
 * fence (a move). Past that, or back to a node it passed, it is a loop.
 */
const MAX_HOPS = 2;

/** Nodes a request passed (from {@link FORWARDED_BY}). */
function hopsOf(request: FastifyRequest): string[] {
  const h = request.headers[FORWARDED_BY];
  return typeof h === 'string' ? h.split(',').map((s) => s.trim()).filter(Boolean) : [];
}

/** Throws TENANT_MOVING when relaying `request` on to `owner` would loop or go too far. */
function assertMayRelay(request: FastifyRequest, cluster: ClusterNode, t: TenantRecord): void {
  const hops = hopsOf(request);
  if (hops.length >= MAX_HOPS || hops.includes(t.node) || hops.includes(cluster.id)) {
    throw new DomicileError('TENANT_MOVING', `tenant "${t.id}" changed hands while the request was relayed; retry`, { tenant: t.id });
  }
}

/** Request headers passed on to the owner; everything else (cookies, hop-by-hop headers) stays. */
const PASSED_REQUEST_HEADERS = ['authorization', 'content-type', 'idempotency-key', 'accept'] as const;
/** Response headers passed back to the client. */
const PASSED_RESPONSE_HEADERS = ['content-type', 'retry-after', 'location', 'cache-control', 'domicile-region', 'domicile-node', 'domicile-epoch'] as const;

/** How long a relayed request may take before the client gets 503 NODE_UNAVAILABLE. */
const RELAY_TIMEOUT_MS = 30_000;

/** What to do with a request for `tenant` on this node. */
export type RouteDecision =
  | { kind: 'local' }
  | { kind: 'proxy'; owner: NodeInfo }
  | { kind: 'redirect'; owner: NodeInfo };

/**
 * Decides where a request for tenant record `t` is served. Throws
 * NODE_UNAVAILABLE when the owner holds no lease (failover pending) or speaks
 * another protocol major.
 */
export async function decideRoute(rt: Runtime, cluster: ClusterNode, t: TenantRecord): Promise<RouteDecision> {
  if (t.node === cluster.id) return { kind: 'local' };
  const owner = await cluster.liveNode(t.node);
  if (!owner) {
    throw new DomicileError('NODE_UNAVAILABLE', `the node that owns tenant "${t.id}" (${t.node}) holds no lease; a node of region ${t.region} takes it over`, { tenant: t.id, region: t.region, node: t.node });
  }
  if (protocolMajor(owner.protocolVersion) !== protocolMajor(CLUSTER_PROTOCOL_VERSION)) {
    throw new DomicileError('NODE_UNAVAILABLE', `node ${owner.id} speaks cluster protocol ${owner.protocolVersion}; this node speaks ${CLUSTER_PROTOCOL_VERSION}`, { node: owner.id });
  }
  return transitAllowed(rt.policy, t.residency, cluster.region) ? { kind: 'proxy', owner } : { kind: 'redirect', owner };
}

/** The tenant a routed request is about: the `:id` path parameter, or the token's tenant for `/v2/pipeline`. */
async function tenantOf(rt: Runtime, request: FastifyRequest): Promise<string | undefined> {
  const id = (request.params as { id?: unknown } | undefined)?.id;
  const principal = await authenticate(rt, request);
  if (id !== undefined) {
    assertTenantId(id);
    if (principal.kind === 'tenant' && principal.claims.tenant !== id) throw new DomicileError('FORBIDDEN', 'the token belongs to another tenant');
    return id;
  }
  return principal.kind === 'tenant' ? principal.claims.tenant : undefined;
}

/**
 * preHandler of every tenant-scoped route in a cluster: serves locally when
 * this node owns the tenant (and holds a current lease) or the tenant does not
 * exist (the route answers that); else relays or redirects. Returns true when
 * the request was answered here.
 */
export async function routeToOwner(rt: Runtime, cluster: ClusterNode, request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
  const id = await tenantOf(rt, request);
  if (id === undefined) return false;
  const t = await rt.directory.get(id);
  if (!t) return false;
  if (t.node === cluster.id) {
    cluster.assertServing();
    // Claimed by this node and not restored yet (in progress, or a failed attempt the failover retries).
    if (rt.failover?.isRecovering(t.id) || (t.state === 'active' && !existsSync(rt.shardRef(t).path))) {
      throw new DomicileError('NODE_UNAVAILABLE', `tenant "${id}" is being restored on node ${cluster.id} after a failover; retry`, { tenant: id, node: cluster.id });
    }
    return false;
  }
  assertMayRelay(request, cluster, t);
  const decision = await decideRoute(rt, cluster, t);
  if (decision.kind === 'local') return false;
  placementHeaders(reply, t);
  if (decision.kind === 'redirect') {
    await reply.code(307).header('location', decision.owner.url + request.url).header('cache-control', 'no-store').send();
    return true;
  }
  await relay(cluster, decision.owner, request, reply);
  return true;
}

/**
 * `POST /v1/tenants` in a cluster: the policy places the tenant; a region this
 * node serves creates it here, any other goes to a live node of that region
 * (relayed: the request holds no tenant data yet). Placement waits while nodes
 * disagree on the policy (409 POLICY_MISMATCH). Returns true when relayed.
 */
export async function routeCreate(rt: Runtime, cluster: ClusterNode, region: string, request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
  await cluster.assertPolicyAgreed(rt.policy.hash);
  if (region === cluster.region) {
    cluster.assertServing();
    return false;
  }
  if (hopsOf(request).length > 0) {
    throw new DomicileError('NODE_UNAVAILABLE', `node ${cluster.id} does not serve region "${region}"`, { region });
  }
  const candidates = await cluster.liveNodes(region);
  if (candidates.length === 0) throw new DomicileError('NODE_UNAVAILABLE', `no live node serves region "${region}"`, { region });
  // Spread creations over the region's nodes.
  const owner = candidates[Math.floor(Math.random() * candidates.length)]!;
  await relay(cluster, owner, request, reply);
  return true;
}

/**
 * Thrown by a handler that waited at a tenant's gate (a move's fence) and
 * found the tenant owned by another node afterwards: the error handlers
 * answer it like routing would have — relayed or redirected to the new
 * owner, so a client sees a pause, not an error (DESIGN §9 step 6).
 */
export class Rerouted extends Error {
  readonly record: TenantRecord;
  constructor(record: TenantRecord) {
    super(`tenant "${record.id}" is now served by node ${record.node}`);
    this.record = record;
  }
}

/** Throws {@link Rerouted} when a cluster node does not own `t` (call after waiting at the tenant's gate). */
export function assertOwnedHere(rt: Runtime, t: TenantRecord): void {
  if (rt.cluster && t.node !== rt.cluster.id) throw new Rerouted(t);
}

/** Answers a {@link Rerouted} request: relayed or redirected to the new owner (one relay at most). */
export async function answerRerouted(rt: Runtime, err: Rerouted, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const cluster = rt.cluster;
  if (!cluster) throw new DomicileError('TENANT_MOVING', `tenant "${err.record.id}" changed hands while the request waited; retry`, { tenant: err.record.id });
  assertMayRelay(request, cluster, err.record);
  const decision = await decideRoute(rt, cluster, err.record);
  if (decision.kind === 'local') throw new DomicileError('TENANT_MOVING', `tenant "${err.record.id}" changed hands while the request waited; retry`, { tenant: err.record.id });
  placementHeaders(reply, err.record);
  if (decision.kind === 'redirect') {
    await reply.code(307).header('location', decision.owner.url + request.url).header('cache-control', 'no-store').send();
    return;
  }
  await relay(cluster, decision.owner, request, reply);
}

/**
 * An error handler that answers {@link Rerouted} by routing the request to the new owner and
 * everything else (a routing failure included) with `send`, the route family's own error format.
 */
export function reroutingErrorHandler(rt: Runtime, send: (request: FastifyRequest, reply: FastifyReply, err: unknown) => FastifyReply) {
  return async (err: unknown, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | void> => {
    if (!(err instanceof Rerouted)) return send(request, reply, err);
    try {
      return await answerRerouted(rt, err, request, reply);
    } catch (e) {
      return send(request, reply, e);
    }
  };
}

/**
 * Asks every other live node for `request.url` (same method, same token, marked as relayed so
 * that no peer asks further) and returns the first answer with status 200, if any. For state that
 * lives on one unknown node (a move's status lives on the node that drives it); never for tenant
 * data.
 */
export async function askPeers(cluster: ClusterNode, request: FastifyRequest): Promise<{ status: number; body: Buffer; type: string | null; node: string } | undefined> {
  if (hopsOf(request).length > 0) return undefined;
  const peers = (await cluster.liveNodes()).filter((n) => n.id !== cluster.id);
  const headers: Record<string, string> = { [FORWARDED_BY]: cluster.id };
  const auth = request.headers.authorization;
  if (typeof auth === 'string') headers.authorization = auth;
  const answers = await Promise.all(peers.map(async (peer) => {
    try {
      const res = await fetch(peer.url + request.url, { headers, signal: AbortSignal.timeout(5000) });
      if (res.status !== 200) return undefined;
      return { status: 200, body: Buffer.from(await res.arrayBuffer()), type: res.headers.get('content-type'), node: peer.id };
    } catch {
      return undefined; // a dead or slow peer: the others may know
    }
  }));
  return answers.find((a) => a !== undefined);
}

/**
 * Answers from `local()`; in a cluster, when that is NOT_FOUND, from the first other live node
 * that knows (state kept on one node: a move's status, a schema job).
 */
export async function localOrPeers<T>(rt: Runtime, request: FastifyRequest, reply: FastifyReply, local: () => T): Promise<T | FastifyReply> {
  try {
    return local();
  } catch (err) {
    if (!rt.cluster || !isDomicileError(err) || err.code !== 'NOT_FOUND') throw err;
    const found = await askPeers(rt.cluster, request);
    if (!found) throw err;
    return reply.code(200).header('domicile-node', found.node).type(found.type ?? 'application/json').send(found.body);
  }
}

/** The owner's placement on an answer (redirects, relayed answers). */
export function placementHeaders(reply: FastifyReply, t: TenantRecord): void {
  void reply.header('domicile-region', t.region).header('domicile-node', t.node).header('domicile-epoch', String(t.epoch));
}

/** Sends the request on to `owner` and its answer back. */
export async function relay(cluster: ClusterNode, owner: NodeInfo, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const headers: Record<string, string> = { [FORWARDED_BY]: [...hopsOf(request), cluster.id].join(',') };
  for (const h of PASSED_REQUEST_HEADERS) {
    const v = request.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  const hasBody = request.method !== 'GET' && request.method !== 'HEAD' && request.body !== undefined;
  let res: Response;
  try {
    res = await fetch(owner.url + request.url, {
      method: request.method,
      headers,
      ...(hasBody ? { body: JSON.stringify(request.body) } : {}),
      redirect: 'manual',
      signal: AbortSignal.timeout(RELAY_TIMEOUT_MS),
    });
  } catch (err) {
    cluster.invalidate();
    throw new DomicileError('NODE_UNAVAILABLE', `the owner node ${owner.id} did not answer; retry`, { node: owner.id }, { cause: err });
  }
  const body = Buffer.from(await res.arrayBuffer());
  void reply.code(res.status);
  for (const h of PASSED_RESPONSE_HEADERS) {
    const v = res.headers.get(h);
    if (v !== null) void reply.header(h, v);
  }
  await reply.send(body);
}
