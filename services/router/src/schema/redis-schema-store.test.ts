import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '@domicile/testkit';
import { describeSchemaStoreContract } from './schema-store.contract.ts';
import { RedisSchemaStore } from './redis-schema-store.ts';

let redis: RedisServer;
let n = 0;
beforeAll(async () => { redis = await startRedisServer(); });
afterAll(async () => { await redis?.stop(); });

// Each test gets its own key prefix on the one server: a fresh, empty list.
describeSchemaStoreContract('redis', async () => {
  const store = new RedisSchemaStore({ url: redis.url, keyPrefix: `t${++n}:` });
  return { store, cleanup: async () => store.close() };
});

it('redis schema store: concurrent puts of one list from two nodes store each migration once', async () => {
  const opts = { url: redis.url, keyPrefix: 'race:' };
  const a = new RedisSchemaStore(opts);
  const b = new RedisSchemaStore(opts);
  try {
    const m = (i: number) => ({ name: `${String(i).padStart(4, '0')}_m`, sql: `CREATE TABLE t${i} (x);` });
    const list = [m(1), m(2), m(3)];
    const results = await Promise.all([a, b, a, b, a, b].map((s) => s.put(list)));
    expect(results.flatMap((r) => r.added).sort()).toEqual(['0001_m', '0002_m', '0003_m']);
    expect((await b.list()).map((x) => x.name)).toEqual(['0001_m', '0002_m', '0003_m']);
    for (const r of results) expect(r.migrations.map((x) => x.name)).toEqual(['0001_m', '0002_m', '0003_m']);
    await expect(a.put([m(1), { name: '0002_m', sql: 'DROP TABLE t1;' }])).rejects.toMatchObject({ code: 'SCHEMA_CONFLICT' });
  } finally {
    await a.close();
    await b.close();
  }
});
