import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '@domicile/testkit';
import { describeDirectoryContract } from '../directory.contract.ts';
import type { TenantRecord } from '../directory.ts';
import { RedisDirectory, type EpochChange } from './redis-directory.ts';

let server: RedisServer | undefined;
let n = 0;
afterAll(async () => server?.stop());

const record = (id: string, over: Partial<TenantRecord> = {}): TenantRecord => ({
  id, incarnation: randomUUID(), residency: 'eu', region: 'eu-west', node: 'eu-west-1', epoch: 1,
  state: 'active', durability: 'async', createdAt: new Date().toISOString(), tokensValidAfter: 0, ...over,
});

// One server for the file; each test gets its own key prefix, which also proves that clusters
// sharing a Redis do not see each other.
describeDirectoryContract('redis', async () => {
  server ??= await startRedisServer({ password: 'contract-secret' });
  const directory = new RedisDirectory({ url: server.url, keyPrefix: `c${++n}:` });
  return { directory, cleanup: () => directory.close() };
});

describe('RedisDirectory', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => redis.stop());

  it('refuses URLs other than redis:// and rediss://, and prefixes that would change hash tags', () => {
    expect(() => new RedisDirectory({ url: 'http://127.0.0.1:1' })).toThrow(/redis:\/\/ or rediss:\/\//);
    expect(() => new RedisDirectory({ url: redis.url, keyPrefix: '{x}' })).toThrow(/prefix/);
  });

  it('refuses a tenant id that could break out of its hash tag with INVALID_TENANT_ID', async () => {
    const dir = new RedisDirectory({ url: redis.url, keyPrefix: `ids${++n}:` });
    await expect(dir.create(record('a}b{c'))).rejects.toMatchObject({ code: 'INVALID_TENANT_ID' });
    await dir.close();
  });

  it('fails with DIRECTORY_UNAVAILABLE on a wrong password instead of hanging', async () => {
    const secured = await startRedisServer({ password: 'right' });
    try {
      const dir = new RedisDirectory({ url: `redis://:wrong@127.0.0.1:${secured.port}`, timeoutMs: 500 });
      await expect(dir.get('acme')).rejects.toMatchObject({ code: 'DIRECTORY_UNAVAILABLE' });
      await dir.close();
    } finally {
      await secured.stop();
    }
  });

  it('speaks TLS with rediss:// and a password, and refuses a server certificate it does not trust', async () => {
    const secure = await startRedisServer({ tls: true, password: 'tls-secret' });
    try {
      expect(secure.url).toMatch(/^rediss:\/\/:tls-secret@/);
      const dir = new RedisDirectory({ url: secure.url, tlsCa: secure.ca! });
      await dir.create(record('acme'));
      expect((await dir.get('acme'))?.id).toBe('acme');
      await dir.close();
      const untrusting = new RedisDirectory({ url: secure.url, timeoutMs: 500 });
      await expect(untrusting.get('acme')).rejects.toMatchObject({ code: 'DIRECTORY_UNAVAILABLE' });
      await untrusting.close();
    } finally {
      await secure.stop();
    }
  });

  it('keeps each tenant in its own hash slot and the indexes in one slot', async () => {
    const prefix = `slots${++n}:`;
    const dir = new RedisDirectory({ url: redis.url, keyPrefix: prefix });
    await dir.create(record('acme'));
    // Read the raw key names through a plain connection.
    const keys = new Set<string>();
    const { Redis } = await import('ioredis');
    const raw = new Redis(redis.url);
    try {
      let cursor = '0';
      do {
        const [next, found] = await raw.scan(cursor, 'MATCH', `${prefix}*`);
        cursor = next;
        for (const k of found) keys.add(k);
      } while (cursor !== '0');
    } finally {
      raw.disconnect();
    }
    expect([...keys].sort()).toEqual([
      `${prefix}tenant:{acme}`,
      ...['all', 'at', 'count', 'node', 'region', 'residency'].map((k) => `${prefix}{idx}:${k}`),
    ].sort());
    await dir.close();
  });

  it('rebuildIndexes() restores listing and counts from the tenant hashes alone', async () => {
    const prefix = `rebuild${++n}:`;
    const dir = new RedisDirectory({ url: redis.url, keyPrefix: prefix });
    for (const id of ['a', 'b', 'c']) await dir.create(record(id, id === 'b' ? { region: 'us-east', residency: 'us' } : {}));
    const { Redis } = await import('ioredis');
    const raw = new Redis(redis.url);
    await raw.del(...['all', 'at', 'count', 'node', 'region', 'residency'].map((k) => `${prefix}{idx}:${k}`));
    raw.disconnect();
    expect((await dir.list({ limit: 10 })).tenants).toEqual([]);
    expect(await dir.rebuildIndexes()).toBe(3);
    expect((await dir.list({ limit: 10 })).tenants.map((t) => t.id)).toEqual(['a', 'b', 'c']);
    expect((await dir.list({ limit: 10, residency: 'us' })).tenants.map((t) => t.id)).toEqual(['b']);
    expect(Object.fromEntries(await dir.countByRegion())).toEqual({ 'eu-west': 2, 'us-east': 1 });
    await dir.close();
  });

  it('publishes epoch and node changes to subscribers of another RedisDirectory', async () => {
    const prefix = `pubsub${++n}:`;
    const writer = new RedisDirectory({ url: redis.url, keyPrefix: prefix });
    const reader = new RedisDirectory({ url: redis.url, keyPrefix: prefix });
    const other = new RedisDirectory({ url: redis.url, keyPrefix: `elsewhere${n}:` });
    const seen: EpochChange[] = [];
    const elsewhere: EpochChange[] = [];
    const unsubscribe = await reader.subscribe({ onChange: (c) => seen.push(c) });
    const unsubscribeOther = await other.subscribe({ onChange: (c) => elsewhere.push(c) });
    const r = await writer.create(record('acme'));
    // A change that keeps node and epoch (a state flip) is not an epoch change.
    await writer.compareAndSet('acme', { incarnation: r.incarnation, epoch: 1 }, { state: 'moving' });
    await writer.compareAndSet('acme', { incarnation: r.incarnation, epoch: 1 }, { node: 'eu-west-2', epoch: 2, state: 'active' });
    await writer.remove('acme', r.incarnation);
    await expect.poll(() => seen.length).toBe(2);
    expect(seen).toEqual([
      { tenant: 'acme', epoch: 2, node: 'eu-west-2' },
      { tenant: 'acme', epoch: 2, node: 'eu-west-2', removed: true },
    ]);
    await unsubscribe();
    await writer.create(record('acme'));
    const r2 = (await writer.get('acme'))!;
    await writer.compareAndSet('acme', { incarnation: r2.incarnation, epoch: 1 }, { epoch: 2 });
    await new Promise((res) => setTimeout(res, 100));
    expect(seen).toHaveLength(2);
    expect(elsewhere).toEqual([]);
    await unsubscribeOther();
    await Promise.all([writer.close(), reader.close(), other.close()]);
  });
});

describe('RedisDirectory when Redis fails', () => {
  const TIMEOUT = 400;
  /** Upper bound of a failing call: the timeout plus scheduling slack on a loaded 2-core machine. */
  const BOUND = TIMEOUT + 600;

  async function timed<T>(p: Promise<T>): Promise<{ ms: number; result: PromiseSettledResult<T> }> {
    const t0 = performance.now();
    const [result] = await Promise.allSettled([p]);
    return { ms: performance.now() - t0, result: result! };
  }

  it('answers DIRECTORY_UNAVAILABLE within the bound while Redis is down, and recovers when it returns', async () => {
    const redis = await startRedisServer({ persistence: true });
    const dir = new RedisDirectory({ url: redis.url, timeoutMs: TIMEOUT });
    try {
      const r = await dir.create(record('acme'));
      await redis.kill();
      for (const op of [dir.get('acme'), dir.compareAndSet('acme', { incarnation: r.incarnation, epoch: 1 }, { epoch: 2 }), dir.list({ limit: 5 })]) {
        const { ms, result } = await timed<unknown>(op);
        expect(result).toMatchObject({ status: 'rejected', reason: { code: 'DIRECTORY_UNAVAILABLE', statusCode: 503 } });
        expect(ms).toBeLessThan(BOUND);
      }
      await redis.restart();
      // The same instance reconnects by itself (no restart of the caller).
      await expect.poll(() => dir.get('acme').then((x) => x?.incarnation, () => 'unavailable'), { timeout: 5000 }).toBe(r.incarnation);
    } finally {
      await dir.close();
      await redis.stop();
    }
  });

  it('answers DIRECTORY_UNAVAILABLE within the bound while Redis is paused (SIGSTOP), and works again after SIGCONT', async () => {
    const redis = await startRedisServer();
    const dir = new RedisDirectory({ url: redis.url, timeoutMs: TIMEOUT });
    try {
      const r = await dir.create(record('acme'));
      redis.pause();
      const get = await timed(dir.get('acme'));
      expect(get.result).toMatchObject({ status: 'rejected', reason: { code: 'DIRECTORY_UNAVAILABLE' } });
      expect(get.ms).toBeGreaterThanOrEqual(TIMEOUT - 50);
      expect(get.ms).toBeLessThan(BOUND);
      const cas = await timed(dir.compareAndSet('acme', { incarnation: r.incarnation, epoch: 1 }, { node: 'n2', epoch: 2 }));
      expect(cas.result).toMatchObject({ status: 'rejected', reason: { code: 'DIRECTORY_UNAVAILABLE' } });
      expect(cas.ms).toBeLessThan(BOUND);
      redis.resume();
      // The timed-out compare-and-set still reached Redis and applied once it woke up: a failed
      // write's outcome is unknown, so the caller re-reads (docs/cluster.md).
      await expect.poll(() => dir.get('acme').then((x) => x?.epoch, () => 'unavailable'), { timeout: 5000 }).toBe(2);
      expect(await dir.compareAndSet('acme', { incarnation: r.incarnation, epoch: 2 }, { epoch: 3 })).toMatchObject({ epoch: 3 });
    } finally {
      await dir.close();
      await redis.stop();
    }
  });

  it('tells a subscriber to resync after Redis comes back, and delivers later changes', async () => {
    const redis = await startRedisServer({ persistence: true });
    const writer = new RedisDirectory({ url: redis.url, timeoutMs: TIMEOUT });
    const reader = new RedisDirectory({ url: redis.url, timeoutMs: TIMEOUT });
    try {
      const seen: EpochChange[] = [];
      let resyncs = 0;
      await reader.subscribe({ onChange: (c) => seen.push(c), onResync: () => resyncs++ });
      const r = await writer.create(record('acme'));
      await redis.kill();
      await redis.restart();
      await expect.poll(() => resyncs, { timeout: 5000 }).toBe(1);
      await expect.poll(() => writer.compareAndSet('acme', { incarnation: r.incarnation, epoch: 1 }, { epoch: 2 }).then((x) => x?.epoch, () => 'unavailable'), { timeout: 5000 }).toBe(2);
      await expect.poll(() => seen, { timeout: 2000 }).toEqual([{ tenant: 'acme', epoch: 2, node: 'eu-west-1' }]);
    } finally {
      await Promise.all([writer.close(), reader.close()]);
      await redis.stop();
    }
  });

  it('answers DIRECTORY_UNAVAILABLE within the bound when nothing listens at the URL', async () => {
    const redis = await startRedisServer();
    const url = redis.url;
    await redis.stop();
    const dir = new RedisDirectory({ url, timeoutMs: TIMEOUT });
    const { ms, result } = await timed(dir.get('acme'));
    expect(result).toMatchObject({ status: 'rejected', reason: { code: 'DIRECTORY_UNAVAILABLE' } });
    expect(ms).toBeLessThan(BOUND);
    await dir.close();
  });
});
