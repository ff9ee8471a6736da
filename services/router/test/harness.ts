import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { parseConfig } from '@domicile/config';
import { startS3Server, S3RVER_CREDENTIALS, type S3Server } from '@domicile/testkit';
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

/**
 * A test app whose moon-base region's bucket is a real S3-compatible server
 * (s3rver, started here): the AWS credentials it needs are set in the
 * environment and put back by `close()`, which also stops the server. `url`
 * is the bucket URL (quick retries, so outage tests stay short).
 */
export async function s3TestApp(bucket: string): Promise<{ s3: S3Server; t: TestApp; url: string; close(): Promise<void> }> {
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  const s3 = await startS3Server({ buckets: [bucket] });
  process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
  const restoreEnv = () => {
    if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID; else process.env.AWS_ACCESS_KEY_ID = saved.id;
    if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY; else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
  };
  const url = `${s3.bucketUrl(bucket, 'p')}&maxAttempts=2&connectTimeoutMs=500`;
  let t: TestApp;
  try {
    t = await testApp({ DOMICILE_BUCKETS: `moon-base=${url}` });
  } catch (err) {
    await s3.stop();
    restoreEnv();
    throw err;
  }
  return {
    s3, t, url,
    async close() {
      await t.close();
      await s3.stop();
      restoreEnv();
    },
  };
}
