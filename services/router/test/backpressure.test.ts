import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_QUEUE } from '@domicile/shard';
import { testApp, type TestApp } from './harness.ts';

/** Only the statement timeout stops it: it holds its worker meanwhile. */
const RUNAWAY = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c';

// Backpressure over HTTP (DESIGN §5, §7): with both workers held by runaway statements,
// requests wait in the pool's queue; past DEFAULT_MAX_QUEUE waiting requests the node answers
// 503 OVERLOADED with Retry-After at once instead of buffering, and serves again once it drains.
describe('backpressure', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await testApp({ DOMICILE_STATEMENT_TIMEOUT_MS: '4000' });
    for (const id of ['slow-a', 'slow-b', 'busy']) expect((await t.req('POST', '/v1/tenants', { id, residency: 'anywhere' })).status).toBe(201);
    expect((await t.req('POST', '/v1/tenants/busy/query', { sql: 'CREATE TABLE t (x INTEGER)' })).status).toBe(200);
    // Each new tenant's generation start (a snapshot-copy job in its queue) must be done before the
    // runaways hold both workers: still queued, it would take one of the queue's places (a loaded
    // machine answered 51 requests OVERLOADED instead of at most 50).
    expect(await t.rt.replicator!.flush()).toBe(true);
  }, 30_000);
  afterAll(async () => {
    await t?.close();
  });

  it('answers 503 OVERLOADED with Retry-After past the queue bound, loses nothing it accepted, and recovers', async () => {
    const runaways = ['slow-a', 'slow-b'].map((id) => t.req('POST', `/v1/tenants/${id}/query`, { sql: RUNAWAY }));
    // Let both runaways reach their workers (a worker silent for 10 ms gets no more work).
    await new Promise((r) => setTimeout(r, 300));
    const extra = 50;
    const writes = Array.from({ length: DEFAULT_MAX_QUEUE + extra }, (_, i) => t.req('POST', '/v1/tenants/busy/query', { sql: 'INSERT INTO t VALUES (?)', params: [i] }));
    const answers = await Promise.all(writes);
    const overloaded = answers.filter((r) => r.status === 503);
    const ok = answers.filter((r) => r.status === 200);
    expect(ok.length + overloaded.length).toBe(answers.length);
    expect(overloaded.length).toBeGreaterThan(0);
    expect(overloaded.length).toBeLessThanOrEqual(extra);
    for (const r of overloaded) {
      expect(r.body.error.code).toBe('OVERLOADED');
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    }
    for (const r of await Promise.all(runaways)) expect(r.body.error.code).toBe('QUERY_TIMEOUT');
    // Every accepted write committed once; the refused ones left nothing.
    const count = await t.req('POST', '/v1/tenants/busy/query', { sql: 'SELECT count(*), count(DISTINCT x) FROM t' });
    expect(count.body.rows[0]).toEqual([ok.length, ok.length]);
    expect(t.rt.pool.stats().queued).toBe(0);
    expect((await t.req('POST', '/v1/tenants/busy/query', { sql: 'INSERT INTO t VALUES (-1)' })).status).toBe(200);
  }, 60_000);
});
