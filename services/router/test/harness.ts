import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { parseConfig } from '@domicile/config';
import { buildApp } from '../src/app.ts';
import { Runtime } from '../src/runtime.ts';

export const ADMIN = 'test-admin-token-0123456789';
export const OPS = 'test-ops-token-0123456789ab';

/** A policy with made-up names, so nothing may assume the example's. */
export const TEST_POLICY = `version: 1
regions:
  mars-north: { jurisdiction: mars }
  mars-south: { jurisdiction: mars }
  moon-base:  { jurisdiction: moon }
residencies:
  mars:
    regions: [mars-north, mars-south]
    transit: redirect
  moon:
    regions: [moon-base]
  anywhere:
    regions: "*"
tenants:
  pinned-co: { residency: mars, pin: mars-south }
`;

/** An app over a real runtime (real shard workers, real SQLite) in a temp dir, driven with inject(). */
export interface TestApp {
  app: FastifyInstance;
  rt: Runtime;
  dir: string;
  req(method: string, url: string, body?: unknown, token?: string | null, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function testApp(env: Record<string, string> = {}): Promise<TestApp> {
  const dir = mkdtempSync(path.join(tmpdir(), 'domicile-route-'));
  const policyPath = path.join(dir, 'placement.yaml');
  writeFileSync(policyPath, TEST_POLICY);
  const config = parseConfig({
    DOMICILE_DATA_DIR: path.join(dir, 'data'), DOMICILE_POLICY: policyPath, DOMICILE_WORKERS: '2',
    DOMICILE_ADMIN_TOKENS: `alice:${ADMIN},ops:${OPS}`, DOMICILE_LOG_LEVEL: 'silent', ...env,
  });
  const rt = await Runtime.open(config, pino({ level: 'silent' }));
  const app = await buildApp(rt);
  rt.setReady(true);
  return {
    app, rt, dir,
    async req(method, url, body, token = ADMIN, headers = {}) {
      const res = await app.inject({
        method: method as 'GET', url,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined && typeof body !== 'string' ? { 'content-type': 'application/json' } : {}), ...headers },
        ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      });
      let parsed: unknown = res.body;
      try { parsed = JSON.parse(res.body); } catch { /* text */ }
      return { status: res.statusCode, body: parsed, headers: res.headers };
    },
    async close() {
      await app.close();
      await rt.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
