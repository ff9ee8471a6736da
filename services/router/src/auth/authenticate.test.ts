import { describe, expect, it } from 'vitest';
import type { FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.ts';
import { authenticate } from './authenticate.ts';

describe('authenticate', () => {
  it('verifies a request once: cluster routing and the route share the principal', async () => {
    let verified = 0;
    const rt = {
      adminAuth: { actorFor: () => undefined },
      tokens: { verify: async () => { verified++; return { tenant: 'acme', incarnation: 'i', scope: 'write', iat: 1, exp: 2 }; } },
    } as unknown as Runtime;
    const request = { headers: { authorization: 'Bearer aaa.bbb.ccc' } } as unknown as FastifyRequest;
    const a = await authenticate(rt, request);
    const b = await authenticate(rt, request);
    expect(b).toBe(a);
    expect(verified).toBe(1);
    await authenticate(rt, { headers: { authorization: 'Bearer aaa.bbb.ccc' } } as unknown as FastifyRequest);
    expect(verified).toBe(2);
  });

  it('does not remember a refusal', async () => {
    let calls = 0;
    const rt = { adminAuth: { actorFor: () => undefined }, tokens: { verify: async () => { calls++; throw new Error('bad'); } } } as unknown as Runtime;
    const request = { headers: { authorization: 'Bearer aaa.bbb.ccc' } } as unknown as FastifyRequest;
    await expect(authenticate(rt, request)).rejects.toThrow();
    await expect(authenticate(rt, request)).rejects.toThrow();
    expect(calls).toBe(2);
  });
});
