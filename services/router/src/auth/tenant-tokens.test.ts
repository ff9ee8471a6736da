import { describe, expect, it } from 'vitest';
import { TenantTokens } from './tenant-tokens.ts';

const SECRETS = [{ kid: 'k1', secret: 'a-secret-of-at-least-thirty-two-bytes!!' }];
const claims = { tenant: 'acme', incarnation: 'inc-1', scope: 'write' as const, ttlSeconds: 60, notBeforeMs: 0 };

/** A clock the test moves. */
function clock(start = Date.parse('2026-12-06T12:00:00Z')) {
  let t = start;
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

describe('TenantTokens', () => {
  it('verifies its own tokens; a tampered signature, an unknown key and garbage are UNAUTHORIZED', async () => {
    const tokens = new TenantTokens(SECRETS);
    const { token } = await tokens.issue(claims);
    expect(await tokens.verify(token)).toMatchObject({ tenant: 'acme', incarnation: 'inc-1', scope: 'write', kid: 'k1' });
    const tampered = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA');
    await expect(tokens.verify(tampered)).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    const other = new TenantTokens([{ kid: 'k2', secret: 'another-secret-of-thirty-two-bytes!!!' }]);
    await expect(other.verify(token)).rejects.toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/unknown key/) });
    await expect(tokens.verify('not.a.jwt')).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it('remembers a verified token until its exp: a hit is checked for expiry again, failures are not remembered', async () => {
    const c = clock();
    const tokens = new TenantTokens(SECRETS, { now: c.now });
    const { token } = await tokens.issue({ ...claims, notBeforeMs: c.now() });
    await expect(tokens.verify(token.slice(0, -1) + (token.endsWith('x') ? 'y' : 'x'))).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    expect(tokens.cachedTokens).toBe(0);
    const first = await tokens.verify(token);
    expect(tokens.cachedTokens).toBe(1);
    expect(await tokens.verify(token)).toBe(first); // the remembered claims, not a second verification
    c.advance(59_000);
    expect(await tokens.verify(token)).toBe(first);
    c.advance(2_000); // past exp (60 s)
    await expect(tokens.verify(token)).rejects.toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/expired/) });
    expect(tokens.cachedTokens).toBe(0);
    // Without the cache, the same clock gives the same answer (jose checks exp against it).
    await expect(new TenantTokens(SECRETS, { now: c.now, cacheSize: 0 }).verify(token)).rejects.toMatchObject({ message: expect.stringMatching(/expired/) });
  });

  it('holds at most cacheSize tokens, least recently used dropped first', async () => {
    const tokens = new TenantTokens(SECRETS, { cacheSize: 2 });
    const issued = await Promise.all(['a', 'b', 'c'].map((t) => tokens.issue({ ...claims, tenant: t })));
    const [a, b, c] = issued.map((x) => x.token) as [string, string, string];
    const ca = await tokens.verify(a);
    await tokens.verify(b);
    expect(await tokens.verify(a)).toBe(ca); // a is now the most recent
    await tokens.verify(c); // drops b
    expect(tokens.cachedTokens).toBe(2);
    expect(await tokens.verify(a)).toBe(ca);
    const cb = await tokens.verify(b); // verified again: a new claims object
    expect(cb).toMatchObject({ tenant: 'b' });
    expect(tokens.cachedTokens).toBe(2);
    expect(new TenantTokens(SECRETS, { cacheSize: 0 }).cachedTokens).toBe(0);
  });
});
