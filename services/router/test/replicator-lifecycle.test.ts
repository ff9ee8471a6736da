// The replicator over a real ShardPool and a filesystem bucket: it forgets idle
// tenants (bounded memory on a node with many more tenants than active ones;
// large shards later) and resumes the same generation at their next write; it
// ships at most `concurrency` tenants at once; and a crash of the shipper
// thread loses nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FsObjectStore, type ObjectStore } from '@domicile/object-store';
import { listGenerations } from '@domicile/replication';
import { ShardPool, shardPath, type ShardRef } from '@domicile/shard';
import { Replicator, type ReplicatorOptions } from '../src/replication/replicator.ts';
import { ThreadShippers } from '../src/replication/shipper-thread.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'domicile-replicator-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const quiet = { info() {}, warn() {}, error() {} };

/** A pool whose commits notify a replicator (with `opts`), one tenant with a `kv` table and one row (txid 2); closes both after `fn`. */
async function withReplicator(
  tenant: string,
  opts: Partial<ReplicatorOptions>,
  fn: (t: { rep: Replicator; pool: ShardPool; ref: ShardRef; store: FsObjectStore }) => Promise<void>,
): Promise<void> {
  const store = new FsObjectStore(path.join(dir, `bucket-${tenant}`));
  let rep!: Replicator;
  const pool = new ShardPool({ workers: 1, maxOpenShards: 4, statementTimeoutMs: 5000, maxResultBytes: 1 << 20, maxDbBytes: 1 << 26, replication: true, onCommit: (r) => rep.notify(r) });
  rep = new Replicator({ pool, storeFor: () => store, log: quiet, shipIntervalMs: 10, ...opts });
  await pool.start();
  try {
    const ref: ShardRef = { tenant, incarnation: 'inc1', epoch: 1, path: shardPath(dir, tenant) };
    await pool.create(ref);
    await pool.query(ref, { sql: 'CREATE TABLE kv (id INTEGER PRIMARY KEY)' });
    await pool.query(ref, { sql: 'INSERT INTO kv VALUES (1)' });
    expect(await rep.flush()).toBe(true);
    await fn({ rep, pool, ref, store });
  } finally {
    await rep.close();
    await pool.close();
  }
}

describe('Replicator idle forgetting', () => {
  it('forgets a tenant idle past idleForgetMs and resumes its generation at the next write', async () => {
    await withReplicator('idle', { idleForgetMs: 100 }, async ({ rep, pool, ref, store }) => {
      expect(rep.trackedTenants).toBe(1);
      for (let i = 0; i < 50 && rep.trackedTenants > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(rep.trackedTenants).toBe(0);
      await pool.query(ref, { sql: 'INSERT INTO kv VALUES (2)' });
      expect(await rep.flush()).toBe(true);
      const gens = await listGenerations(store, 'idle', 'inc1');
      expect(gens).toHaveLength(1);
      expect(gens[0]!.lastTxid).toBe(3);
      expect(rep.status('idle')).toMatchObject({ lastTxid: 3, replicatedTxid: 3 });
    });
  });
});

describe('Replicator idle forgetting of large shards', () => {
  it('keeps a shard over largeShardBytes ten times longer than a small one', async () => {
    await withReplicator('big-idle', { idleForgetMs: 100, largeShardBytes: 1 }, async ({ rep }) => {
      expect(rep.trackedTenants).toBe(1);
      await new Promise((r) => setTimeout(r, 400)); // past 100 ms (a small shard would be gone), well before 1 s
      expect(rep.trackedTenants).toBe(1);
      for (let i = 0; i < 100 && rep.trackedTenants > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(rep.trackedTenants).toBe(0);
    });
  });
});

describe('Replicator concurrency', () => {
  it('ships at most `concurrency` tenants at once, and does use that many', async () => {
    const inner = new FsObjectStore(path.join(dir, 'bucket-slots'));
    let now = 0;
    let max = 0;
    // The bucket as the replicator sees it: every upload takes 30 ms, and we count the ones in flight.
    const slow: ObjectStore = {
      put: async (...args) => {
        max = Math.max(max, ++now);
        try {
          await new Promise((r) => setTimeout(r, 30));
          return await inner.put(...args);
        } finally {
          now--;
        }
      },
      get: (k) => inner.get(k), getStream: (k) => inner.getStream(k), head: (k) => inner.head(k),
      list: (p, o) => inner.list(p, o), delete: (k) => inner.delete(k), deleteMany: (k) => inner.deleteMany(k),
      close: () => inner.close(), describe: () => inner.describe(), supportsConditionalCreate: inner.supportsConditionalCreate,
    };
    await withReplicator('slots-0', { concurrency: 3, storeFor: () => slow }, async ({ rep, pool }) => {
      max = 0;
      const refs: ShardRef[] = [];
      for (let i = 1; i <= 10; i++) {
        const ref: ShardRef = { tenant: `slots-${i}`, incarnation: 'inc1', epoch: 1, path: shardPath(dir, `slots-${i}`) };
        await pool.create(ref);
        refs.push(ref);
      }
      await Promise.all(refs.map((ref) => pool.query(ref, { sql: 'CREATE TABLE kv (id INTEGER PRIMARY KEY)' })));
      expect(await rep.flush()).toBe(true);
      expect(max).toBeLessThanOrEqual(3);
      expect(max).toBe(3);
    });
  });
});

describe('Replicator slots for sync writers', () => {
  it('ships a tenant whose sync writer waits before the async tenants queued ahead of it', async () => {
    const inner = new FsObjectStore(path.join(dir, 'bucket-urgent'));
    let gate: Promise<void> | undefined;
    let open!: () => void;
    const order: string[] = [];
    // The bucket as the replicator sees it: uploads wait while the gate is shut; the order of uploads is kept.
    const gated: ObjectStore = {
      put: async (key, ...rest) => {
        if (gate) await gate;
        order.push(key.split('/')[1]!);
        return inner.put(key, ...rest);
      },
      get: (k) => inner.get(k), getStream: (k) => inner.getStream(k), head: (k) => inner.head(k),
      list: (p, o) => inner.list(p, o), delete: (k) => inner.delete(k), deleteMany: (k) => inner.deleteMany(k),
      close: () => inner.close(), describe: () => inner.describe(), supportsConditionalCreate: inner.supportsConditionalCreate,
    };
    await withReplicator('urgent-0', { concurrency: 1, storeFor: () => gated }, async ({ rep, pool, ref: first }) => {
      const make = async (tenant: string) => {
        const ref: ShardRef = { tenant, incarnation: 'inc1', epoch: 1, path: shardPath(dir, tenant) };
        await pool.create(ref);
        return ref;
      };
      gate = new Promise((r) => (open = r));
      // urgent-0 takes the only slot (its upload is held); four async tenants queue behind it, then the sync one.
      await pool.query(first, { sql: 'INSERT INTO kv VALUES (2)' });
      for (let i = 1; i <= 4; i++) await make(`urgent-${i}`);
      const sync = await make('urgent-sync');
      for (let i = 0; i < 100 && rep.backlog < 5; i++) await new Promise((r) => setTimeout(r, 10));
      expect(rep.backlog).toBe(5);
      const durable = rep.waitDurable(sync);
      order.length = 0;
      gate = undefined;
      open();
      await durable;
      expect(await rep.flush()).toBe(true);
      // After the held upload, the sync tenant's first; without the priority it would come last.
      const firstOfEach = [...new Set(order)];
      expect(firstOfEach.indexOf('urgent-sync')).toBeLessThanOrEqual(1);
      expect(firstOfEach).toHaveLength(6);
    });
  });
});

describe('Replicator creation backpressure', () => {
  it('admits creations at once below maxBacklog, holds them while more tenants wait for a slot, and lets them go as the backlog drains', async () => {
    const inner = new FsObjectStore(path.join(dir, 'bucket-backlog'));
    let gate: Promise<void> | undefined;
    let open!: () => void;
    // The bucket as the replicator sees it: uploads wait while the gate is shut.
    const gated: ObjectStore = {
      put: async (...args) => {
        if (gate) await gate;
        return inner.put(...args);
      },
      get: (k) => inner.get(k), getStream: (k) => inner.getStream(k), head: (k) => inner.head(k),
      list: (p, o) => inner.list(p, o), delete: (k) => inner.delete(k), deleteMany: (k) => inner.deleteMany(k),
      close: () => inner.close(), describe: () => inner.describe(), supportsConditionalCreate: inner.supportsConditionalCreate,
    };
    await withReplicator('backlog-0', { concurrency: 1, maxBacklog: 3, storeFor: () => gated }, async ({ rep, pool }) => {
      expect(await rep.admitCreation(10)).toBe(true);
      gate = new Promise((r) => (open = r));
      for (let i = 1; i <= 5; i++) {
        const ref: ShardRef = { tenant: `backlog-${i}`, incarnation: 'inc1', epoch: 1, path: shardPath(dir, `backlog-${i}`) };
        await pool.create(ref);
      }
      // One tenant holds the only slot (its upload is held); the other four wait.
      for (let i = 0; i < 100 && rep.backlog < 4; i++) await new Promise((r) => setTimeout(r, 10));
      expect(rep.backlog).toBe(4);
      expect(await rep.admitCreation(50)).toBe(false);
      const waiting = rep.admitCreation(10_000);
      gate = undefined;
      open();
      expect(await waiting).toBe(true);
      expect(await rep.flush()).toBe(true);
      expect(rep.backlog).toBe(0);
      expect(await rep.admitCreation(10)).toBe(true);
    });
  });
});

describe('Replicator with its shippers on a thread', () => {
  it('a crash of the shipper thread loses nothing: the tenant resumes from the bucket tip on a new thread, same generation, no gap', async () => {
    const shippers = new ThreadShippers();
    await withReplicator('crashy', { baseBackoffMs: 10, shippers }, async ({ rep, pool, ref, store }) => {
      const thread = shippers.threadId;
      expect(thread).toBeDefined();
      await shippers.crashForTest();
      for (let i = 2; i <= 6; i++) await pool.query(ref, { sql: `INSERT INTO kv VALUES (${i})` });
      expect(await rep.flush()).toBe(true);
      expect(shippers.threadId).not.toBe(thread);
      const gens = await listGenerations(store, 'crashy', 'inc1');
      expect(gens).toHaveLength(1);
      expect(gens[0]!.lastTxid).toBe(7);
      expect(rep.status('crashy')).toMatchObject({ lastTxid: 7, replicatedTxid: 7, failures: 0 });
    });
  });
});
