import { SignJWT, decodeProtectedHeader, jwtVerify, errors as joseErrors } from 'jose';
import { LRUCache } from 'lru-cache';
import { DomicileError } from '@domicile/errors';

/** What a tenant token may do. */
export type TokenScope = 'read' | 'write';

/** A verified tenant token's claims. */
export interface TenantClaims {
  tenant: string;
  incarnation: string;
  scope: TokenScope;
  /** Issued-at, seconds. */
  iat: number;
  exp: number;
  kid: string;
}

/** Longest lifetime a tenant token may ask for: one year. */
export const MAX_TOKEN_TTL_SECONDS = 365 * 86_400;
/** Lifetime when the request names none: one hour. */
export const DEFAULT_TOKEN_TTL_SECONDS = 3600;

/** Verified tokens remembered by default (see {@link TenantTokens}). */
export const VERIFIED_TOKEN_CACHE = 10_000;

export interface TenantTokensOptions {
  /** Verified tokens remembered (least recently used dropped first); 0: none. Default {@link VERIFIED_TOKEN_CACHE}. */
  cacheSize?: number;
  /** Clock, ms (tests). */
  now?: () => number;
}

/**
 * Signs and verifies tenant tokens: JWT with the algorithm pinned to HS256, claims
 * `sub` (tenant), `inc` (incarnation), `scope`, `iat`, `exp`, and the key id in the header.
 * The first key signs; every key verifies (rotation: add a new key first, drop the old one later).
 *
 * Verification through jose (a WebCrypto key import and an HMAC per call)
 * doubled the server CPU per write of tenant-token clients (`pnpm bench
 * --tenant-tokens` with DOMICILE_TOKEN_CACHE=0, loadtest/RESULTS.md). A client sends the same token with every
 * request until it expires, so the claims of a token that verified are kept,
 * keyed by the whole token string (its signature included: only that exact
 * string hits), until its `exp` or until dropped as least recently used. Only
 * the signature check is skipped: expiry is checked again on every hit, and
 * the tenant binding and revocation (`authorizeTenant`) are checked per
 * request as before. Failures are never remembered.
 */
export class TenantTokens {
  readonly #keys: ReadonlyArray<{ kid: string; key: Uint8Array }>;
  readonly #now: () => number;
  readonly #verified: LRUCache<string, TenantClaims> | undefined;

  constructor(secrets: ReadonlyArray<{ kid: string; secret: string }>, opts: TenantTokensOptions = {}) {
    if (secrets.length === 0) throw new DomicileError('INTERNAL', 'no token signing key configured');
    this.#keys = secrets.map((s) => ({ kid: s.kid, key: new TextEncoder().encode(s.secret) }));
    this.#now = opts.now ?? Date.now;
    const size = opts.cacheSize ?? VERIFIED_TOKEN_CACHE;
    this.#verified = size > 0 ? new LRUCache({ max: size }) : undefined;
  }

  /** Verified tokens held now (tests, metrics). */
  get cachedTokens(): number {
    return this.#verified?.size ?? 0;
  }

  /**
   * Issues a token. `notBeforeMs` is the tenant's revocation instant: `iat` is never earlier,
   * so a token issued right after a revocation is valid even within the same second.
   */
  async issue(claims: { tenant: string; incarnation: string; scope: TokenScope; ttlSeconds: number; notBeforeMs: number }): Promise<{ token: string; expiresAt: string }> {
    const signer = this.#keys[0]!;
    const iat = Math.max(Math.floor(this.#now() / 1000), Math.ceil(claims.notBeforeMs / 1000));
    const exp = iat + claims.ttlSeconds;
    // `kid` is in the header (where JWT libraries look) and, per the contract, among the claims.
    const token = await new SignJWT({ inc: claims.incarnation, scope: claims.scope, kid: signer.kid })
      .setProtectedHeader({ alg: 'HS256', kid: signer.kid, typ: 'JWT' })
      .setSubject(claims.tenant)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(signer.key);
    return { token, expiresAt: new Date(exp * 1000).toISOString() };
  }

  /** True when the string has the shape of a JWT (three dot-separated parts): decides admin vs tenant token. */
  static looksLikeJwt(token: string): boolean {
    return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
  }

  /** Verifies signature (HS256 only), expiry and claim shapes. Any failure → UNAUTHORIZED. */
  async verify(token: string): Promise<TenantClaims> {
    const known = this.#verified?.get(token);
    if (known) {
      if (known.exp * 1000 > this.#now()) return known;
      this.#verified!.delete(token);
      throw unauthorized('the token has expired');
    }
    const claims = await this.#verify(token);
    this.#verified?.set(token, claims);
    return claims;
  }

  async #verify(token: string): Promise<TenantClaims> {
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      throw unauthorized('the token is not a valid JWT');
    }
    const key = this.#keys.find((k) => k.kid === kid);
    if (!key || !kid) throw unauthorized('the token was signed with an unknown key');
    try {
      const { payload } = await jwtVerify(token, key.key, { algorithms: ['HS256'], requiredClaims: ['sub', 'exp', 'iat'], currentDate: new Date(this.#now()) });
      const { sub, inc, scope, iat, exp } = payload as Record<string, unknown>;
      if (typeof sub !== 'string' || typeof inc !== 'string' || (scope !== 'read' && scope !== 'write') || typeof iat !== 'number' || typeof exp !== 'number') {
        throw unauthorized('the token lacks Domicile claims');
      }
      return Object.freeze({ tenant: sub, incarnation: inc, scope, iat, exp, kid });
    } catch (err) {
      if ((err as { code?: string }).code === 'UNAUTHORIZED') throw err;
      if (err instanceof joseErrors.JWTExpired) throw unauthorized('the token has expired');
      throw unauthorized('the token signature or claims are not valid');
    }
  }
}

const unauthorized = (message: string): DomicileError => new DomicileError('UNAUTHORIZED', message);
