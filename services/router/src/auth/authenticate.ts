import type { FastifyRequest } from 'fastify';
import { DomicileError } from '@domicile/errors';
import type { TenantRecord } from '@domicile/directory';
import type { Runtime } from '../runtime.ts';
import { TenantTokens, type TenantClaims } from './tenant-tokens.ts';

/** Who is asking: an admin (named) or a tenant token. */
export type Principal =
  | { kind: 'admin'; actor: string }
  | { kind: 'tenant'; actor: string; claims: TenantClaims };

/** Reads the bearer token of a request; missing or malformed → UNAUTHORIZED. */
export function bearerToken(request: FastifyRequest): string {
  const h = request.headers.authorization;
  const m = typeof h === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
  if (!m?.[1]) throw new DomicileError('UNAUTHORIZED', 'send Authorization: Bearer <token>');
  return m[1];
}

/** Principals already established for a request (cluster routing authenticates before the route does). */
const known = new WeakMap<FastifyRequest, Principal>();

/** Authenticates a request as admin or tenant (signature and expiry only; tenant binding is checked per route). Once per request. */
export async function authenticate(rt: Runtime, request: FastifyRequest): Promise<Principal> {
  const seen = known.get(request);
  if (seen) return seen;
  const p = await verify(rt, request);
  known.set(request, p);
  return p;
}

async function verify(rt: Runtime, request: FastifyRequest): Promise<Principal> {
  const token = bearerToken(request);
  const actor = rt.adminAuth.actorFor(token);
  if (actor !== undefined) return { kind: 'admin', actor };
  if (!TenantTokens.looksLikeJwt(token)) throw new DomicileError('UNAUTHORIZED', 'the token is not valid');
  const claims = await rt.tokens.verify(token);
  return { kind: 'tenant', actor: `tenant:${claims.tenant}`, claims };
}

/** Admin plane: only admin tokens. A valid tenant token gets FORBIDDEN, anything else UNAUTHORIZED. */
export async function requireAdmin(rt: Runtime, request: FastifyRequest): Promise<{ actor: string }> {
  const p = await authenticate(rt, request);
  if (p.kind !== 'admin') throw new DomicileError('FORBIDDEN', 'tenant tokens cannot use the admin API');
  return { actor: p.actor };
}

/**
 * Data plane: an admin token, or a tenant token for exactly this tenant's current incarnation,
 * issued after its last revocation. Returns whether the caller may only read.
 */
export function authorizeTenant(p: Principal, tenant: TenantRecord): { readOnly: boolean } {
  if (p.kind === 'admin') return { readOnly: false };
  const c = p.claims;
  if (c.tenant !== tenant.id) throw new DomicileError('FORBIDDEN', 'the token belongs to another tenant');
  if (c.incarnation !== tenant.incarnation) throw new DomicileError('UNAUTHORIZED', 'the token belongs to an earlier tenant with this id');
  if (c.iat * 1000 < tenant.tokensValidAfter) throw new DomicileError('UNAUTHORIZED', 'the token has been revoked');
  return { readOnly: c.scope === 'read' };
}
