// The replicator over a real ShardPool and a filesystem bucket: it forgets idle
// tenants (bounded memory on a node with many more tenants than active ones;
// large shards later) and resumes the same generation at their next write; it
// ships at most `concurrency` tenants at once; it checkpoints a quiet
// tenant's WAL without holding its writes, and holds a busy one only past
// `checkpointForceBytes`; and a crash of the shipper thread loses nothing.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FsObjectStore, type ObjectStore } from '@domicile/object-store';
import { listGenerations, readWal, restore } from '@domicile/replication';
import Database from 'better-sqlite3';
import { ShardPool, shardPath, type MaintenanceResult, type ShardRef } from '@domicile/shard';
import { Replicator, syncLogFile, type ReplicatorOptions } from '../src/replication/replicator.ts';
import { ThreadShippers } from '../src/replication/shipper-thread.ts';
import { CheckpointHolds } from '../src/moves/checkpoint-holds.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'domicile-replicator-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const quiet = { info() {}, warn() {}, error() {} };

/** A pool whose commits notify a replicator (with `opts`), one tenant with a `kv` table and one row (txid 2); closes both after `fn`. */
async function withReplicator(
  tenant: string,
  opts: Partial<ReplicatorOptions> | ((pool: ShardPool) => Partial<ReplicatorOptions>),
  fn: (t: { rep: Replicator; pool: ShardPool; ref: ShardRef; store: FsObjectStore }) => Promise<void>,
): Promise<void> {
  const store = new FsObjectStore(path.join(dir, `bucket-${tenant}`));
  let rep!: Replicator;
  const pool = new ShardPool({ workers: 1, maxOpenShards: 4, statementTimeoutMs: 5000, maxResultBytes: 1 << 20, maxDbBytes: 1 << 26, replication: true, onCommit: (r) => rep.notify(r) });
  rep = new Replicator({ pool, storeFor: () => store, log: quiet, shipIntervalMs: 10, ...(typeof opts === 'function' ? opts(pool) : opts) });
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

describe('Replicator flush', () => {
  it('ships at once, not after the shipping interval', async () => {
    await withReplicator('flushy', { shipIntervalMs: 60_000 }, async ({ rep, pool, ref }) => {
      // The set-up's flush shipped a pass just now: the next one is due in a minute unless flush cuts it short.
      for (let i = 2; i <= 4; i++) {
        await pool.query(ref, { sql: `INSERT INTO kv VALUES (${i})` });
        const started = performance.now();
        expect(await rep.flush(20_000)).toBe(true);
        expect(performance.now() - started).toBeLessThan(10_000);
        expect(rep.status('flushy')).toMatchObject({ lastTxid: i + 1, replicatedTxid: i + 1 });
      }
      // Once flushed, the interval applies again: a later write waits for it.
      await pool.query(ref, { sql: 'INSERT INTO kv VALUES (5)' });
      await new Promise((r) => setTimeout(r, 300));
      expect(rep.status('flushy')).toMatchObject({ replicatedTxid: 5 });
      expect(rep.status('flushy')!.lagMs).toBeGreaterThan(0);
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

describe('syncLogFile', () => {
  it('flushes an existing file without changing it, and takes a missing one for nothing to flush', async () => {
    const file = path.join(dir, 'sync-me-wal');
    writeFileSync(file, 'frames');
    await expect(syncLogFile(file)).resolves.toBeUndefined();
    expect(readFileSync(file, 'utf8')).toBe('frames');
    await expect(syncLogFile(path.join(dir, 'no-such-wal'))).resolves.toBeUndefined();
  });
});

describe('Replicator checkpoints', () => {
  const walSize = (ref: ShardRef) => statSync(`${ref.path}-wal`).size;
  /** Bytes of the current log (its header and valid frames): less than the file after a RESTART checkpoint. */
  const logBytes = (ref: ShardRef) => {
    const fd = openSync(`${ref.path}-wal`, 'r');
    try {
      const res = readWal(fd);
      return res.kind === 'frames' ? res.endOffset : 0;
    } finally {
      closeSync(fd);
    }
  };
  /**
   * Replicator options (`extra` added) whose pool counts checkpoint jobs, keeps their results and notes the
   * log's size at each hold; `seen` also gathers what `onCheckpoint` reports, and each `syncLog`: in `synced`
   * those just before a hold (the file, and how many holds had begun — the tenant held, its writes waiting —
   * before it), in `syncedAhead` those after a pass (the log's bytes then).
   */
  const counted = (extra: Partial<ReplicatorOptions>) => {
    const seen = {
      jobs: 0, held: [] as number[], reported: [] as Array<{ how: string; pause: number }>, results: [] as MaintenanceResult[],
      synced: [] as Array<{ file: string; holdsBefore: number }>, syncedAhead: [] as Array<{ file: string; logBytes: number }>, holdsBegun: 0,
    };
    const opts = (pool: ShardPool): Partial<ReplicatorOptions> => ({
      pool: {
        maintenance: (ref: ShardRef, job: Parameters<ShardPool['maintenance']>[1]) => {
          if (job.op === 'checkpoint') seen.jobs++;
          return pool.maintenance(ref, job).then((res) => {
            if (job.op === 'checkpoint') seen.results.push(res);
            return res;
          });
        },
        heldMaintenance: (ref: ShardRef, prepare: Parameters<ShardPool['heldMaintenance']>[1], before?: () => Promise<void>) => {
          seen.held.push(logBytes(ref));
          return pool.heldMaintenance(ref, () => {
            seen.holdsBegun++;
            return prepare();
          }, before);
        },
      },
      onCheckpoint: (_ref, how, pause) => seen.reported.push({ how, pause }),
      syncLog: (file, when) => {
        if (when === 'hold') seen.synced.push({ file, holdsBefore: seen.holdsBegun });
        else seen.syncedAhead.push({ file, logBytes: logBytes({ path: file.slice(0, -'-wal'.length) } as ShardRef) });
        return syncLogFile(file);
      },
      ...extra,
    });
    return { seen, opts };
  };
  /** The rows of the bucket's newest generation, restored offline at its latest txid. */
  const restoredCount = async (store: ObjectStore, tenant: string) => {
    const g = (await listGenerations(store, tenant, 'inc1')).at(-1)!;
    const out = path.join(dir, `${tenant}-restored.db`);
    await restore({ store, ref: { tenant, incarnation: 'inc1', epoch: g.epoch, generation: g.generation }, outPath: out });
    const db = new Database(out, { readonly: true });
    try {
      return (db.prepare('SELECT count(*) AS n FROM kv').get() as { n: number }).n;
    } finally {
      db.close();
    }
  };

  it('checkpoints a quiet tenant past checkpointBytes without holding it, and continues the generation', async () => {
    const { seen, opts } = counted({ checkpointBytes: 256 << 10, checkpointForceBytes: 4 << 20 });
    await withReplicator('ckpt-quiet', opts, async ({ rep, pool, ref, store }) => {
      for (let i = 0; i < 4; i++) await pool.query(ref, { sql: `INSERT INTO kv VALUES (${100 + i})` });
      await pool.query(ref, { sql: 'CREATE TABLE blobs (b BLOB)' });
      await pool.query(ref, { sql: 'INSERT INTO blobs VALUES (randomblob(400000))' });
      expect(await rep.flush()).toBe(true);
      for (let i = 0; i < 100 && walSize(ref) > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(walSize(ref)).toBe(0);
      expect(seen.jobs).toBeGreaterThan(0);
      expect(seen.held).toEqual([]);
      expect(seen.reported.map((r) => r.how)).toContain('quiet');
      expect(seen.reported.map((r) => r.how)).not.toContain('held');
      await pool.query(ref, { sql: 'INSERT INTO kv VALUES (200)' });
      expect(await rep.flush()).toBe(true);
      expect(await listGenerations(store, 'ckpt-quiet', 'inc1')).toHaveLength(1);
      expect(await restoredCount(store, 'ckpt-quiet')).toBe(6);
    });
  });

  /**
   * Four writers, each with its next write queued behind the others', until `stop()`: a checkpoint job never finds
   * the WAL as it was shipped. Rows `from`, `from + 1`, … of kv; returns how many.
   */
  const steadyWrites = async (pool: ShardPool, ref: ShardRef, stop: () => boolean, sample: () => void, from = 1000) => {
    await pool.query(ref, { sql: 'CREATE TABLE IF NOT EXISTS pad (b BLOB)' });
    let next = from;
    const writer = async () => {
      while (!stop() && next < from + 20_000) {
        const id = next++;
        await pool.batch(ref, [{ sql: 'INSERT INTO kv VALUES (?)', params: [id] }, { sql: 'INSERT INTO pad VALUES (randomblob(3000))' }]);
        sample();
      }
    };
    await Promise.all([writer(), writer(), writer(), writer()]);
    return next - from;
  };

  it('holds a tenant under steady writes only as its log reaches checkpointForceBytes, restarts the log in place, and loses nothing', async () => {
    const force = 2 << 20;
    const { seen, opts } = counted({ checkpointBytes: 256 << 10, checkpointForceBytes: force });
    await withReplicator('ckpt-busy', opts, async ({ rep, pool, ref, store }) => {
      let maxWal = 0;
      let minWalAfterHold = Number.POSITIVE_INFINITY;
      const written = await steadyWrites(pool, ref, () => seen.held.length >= 2, () => {
        maxWal = Math.max(maxWal, walSize(ref));
        if (seen.reported.some((r) => r.how === 'held')) minWalAfterHold = Math.min(minWalAfterHold, walSize(ref));
      });
      expect(seen.held.length).toBe(2);
      // Never held below checkpointBytes (the pass that will carry the log past the force size runs held, so a hold
      // may start a little below it), and the WAL stayed near the force size (not unbounded).
      for (const bytes of seen.held) expect(bytes).toBeGreaterThanOrEqual(256 << 10);
      expect(maxWal).toBeLessThan(4 * force);
      // RESTART, not TRUNCATE: after a held checkpoint the busy tenant's -wal kept its size (its next commits overwrite it).
      expect(minWalAfterHold).toBeGreaterThanOrEqual(Math.min(...seen.held));
      expect(await rep.flush()).toBe(true);
      // Below the force size it tried without holding, and the writes in between skipped those tries.
      const held = seen.reported.filter((r) => r.how === 'held');
      expect(held).toHaveLength(2);
      for (const h of held) expect(h.pause).toBeGreaterThan(0);
      // Each hold came right after a flush of the tenant's -wal outside it (the checkpoint's fsync then has little left).
      expect(seen.synced).toEqual([{ file: `${ref.path}-wal`, holdsBefore: 0 }, { file: `${ref.path}-wal`, holdsBefore: 1 }]);
      // Between the holds the log went to disk after passes too, in the background, and only once it was past checkpointBytes.
      expect(seen.syncedAhead.length).toBeGreaterThan(0);
      for (const s of seen.syncedAhead) {
        expect(s.file).toBe(`${ref.path}-wal`);
        expect(s.logBytes).toBeGreaterThanOrEqual(256 << 10);
      }
      expect(seen.reported.filter((r) => r.how === 'skipped').length).toBeGreaterThan(0);
      expect(await listGenerations(store, 'ckpt-busy', 'inc1')).toHaveLength(1);
      expect(await restoredCount(store, 'ckpt-busy')).toBe(1 + written);
    });
  });

  it('flushes no -wal while a move holds the tenant\'s checkpoints, and flushes before the first hold after the release', async () => {
    const holds = new CheckpointHolds();
    const { seen, opts } = counted({ checkpointBytes: 256 << 10, checkpointForceBytes: 1 << 20 });
    let refused = 0;
    const held = () => seen.reported.filter((r) => r.how === 'held').length;
    await withReplicator('ckpt-moving', (pool) => {
      const o = opts(pool);
      const wrapped = holds.wrap(o.pool!);
      return {
        ...o,
        pool: {
          maintenance: wrapped.maintenance,
          heldMaintenance: (ref: ShardRef, prepare: Parameters<ShardPool['heldMaintenance']>[1], before?: () => Promise<void>) => {
            if (holds.isHeld(ref.tenant)) refused++;
            return wrapped.heldMaintenance!(ref, prepare, before);
          },
        },
      };
    }, async ({ rep, pool, ref, store }) => {
      const release = holds.hold(ref.tenant);
      // Past the force size with the move's hold on: every pass would hold the tenant, and each is refused.
      const first = await steadyWrites(pool, ref, () => refused >= 3, () => {});
      expect(refused).toBeGreaterThanOrEqual(3);
      expect(seen.synced).toEqual([]);
      expect(held()).toBe(0);
      release();
      const second = await steadyWrites(pool, ref, () => held() >= 1, () => {}, 30_000);
      expect(held()).toBeGreaterThanOrEqual(1);
      expect(seen.synced[0]).toEqual({ file: `${ref.path}-wal`, holdsBefore: 0 });
      expect(await rep.flush()).toBe(true);
      expect(await restoredCount(store, 'ckpt-moving')).toBe(1 + first + second);
    });
  });

  it('a held checkpoint adds no upload: the pass that would carry the log past the force size is the held one', async () => {
    // Long enough that a held pass (hold, capture, upload, checkpoint) on a loaded CI machine still ends well
    // within it: a held pass longer than the interval would start the next one at once (a short gap).
    const interval = 400;
    const uploads: number[] = [];
    const { seen, opts } = counted({
      checkpointBytes: 128 << 10, checkpointForceBytes: 2 << 20, shipIntervalMs: interval,
      onUpload: (_ref, kind) => { if (kind === 'segment') uploads.push(performance.now()); },
    });
    await withReplicator('ckpt-fold', opts, async ({ rep, pool, ref, store }) => {
      await pool.query(ref, { sql: 'CREATE TABLE pad (b BLOB)' });
      uploads.length = 0; // the set-up's flush
      // One paced writer (here ~5 MiB of log a second): each hold checkpoints a small log, so it is short; the log
      // grows by less than the force size per interval, so the pass that will cross it can be told in advance.
      let written = 0;
      const holds = () => seen.reported.filter((r) => r.how === 'held').length;
      while (holds() < 3 && written < 20_000) {
        await pool.batch(ref, [{ sql: 'INSERT INTO kv VALUES (?)', params: [1000 + written] }, { sql: 'INSERT INTO pad VALUES (randomblob(1000))' }]);
        written++;
        await new Promise((r) => setTimeout(r, 2));
      }
      expect(holds()).toBe(3);
      // One upload per shipping interval, holds included. Had a hold followed a pass (the pass uploads, the hold
      // ships the few commits since), two uploads would come within a few ms of each other, the first of them an
      // interval after the one before. A short gap is only right after a pass that overran the interval (the
      // next starts at once): on a loaded machine a held pass once took 728 ms here, and the next upload came 37 ms
      // after it.
      const gaps = uploads.slice(1).map((t, i) => t - uploads[i]!);
      expect(gaps.length).toBeGreaterThanOrEqual(3);
      const unexplained = gaps.filter((g, i) => g <= interval / 2 && !(i > 0 && gaps[i - 1]! > interval * 1.5));
      expect(unexplained, `gaps ${gaps.map(Math.round).join(', ')} ms`).toEqual([]);
      expect(await rep.flush()).toBe(true);
      expect(await restoredCount(store, 'ckpt-fold')).toBe(1 + written);
    });
  });

  /**
   * Two commits from another connection that overwrite old frames of the log (the -wal keeps its size)
   * within one clock tick (the mtime is pinned), each notified: the first is shipped by a pass that records
   * the -wal's size and mtime, the second has the same size and mtime, so only the log tells it from a read.
   * Waits for each to be shipped (no flush: its extra pass would find nothing new and truncate the -wal).
   */
  const writeTwiceInPlace = async (rep: Replicator, ref: ShardRef): Promise<boolean> => {
    const wal = `${ref.path}-wal`;
    const db = new Database(ref.path);
    try {
      const txid = () => (db.prepare('SELECT txid FROM _domicile_meta').get() as { txid: number }).txid;
      const shipped = async () => {
        const done = () => rep.status(ref.tenant)?.replicatedTxid === txid() && rep.status(ref.tenant)?.lagMs === 0;
        for (let i = 0; i < 100 && !done(); i++) await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setTimeout(r, 50)); // and its pass loop has ended: the next notification finds it idle
        return done();
      };
      const tick = new Date('2026-01-01T00:00:00Z');
      const writeInPlace = (id: number) => {
        const size = walSize(ref);
        db.transaction(() => {
          db.prepare('INSERT INTO kv VALUES (?)').run(id);
          db.prepare('UPDATE _domicile_meta SET txid = txid + 1').run();
        })();
        expect(walSize(ref)).toBe(size);
        utimesSync(wal, tick, tick);
        rep.notify(ref);
      };
      if (!(await shipped())) return false;
      writeInPlace(999_998);
      if (!(await shipped())) return false;
      writeInPlace(999_999);
      return await shipped();
    } finally {
      db.close();
    }
  };

  it('a write in place after a RESTART is shipped even when the -wal\'s size and mtime look unchanged', async () => {
    const { seen, opts } = counted({ checkpointBytes: 256 << 10, checkpointForceBytes: 1 << 20 });
    await withReplicator('ckpt-inplace', opts, async ({ rep, pool, ref, store }) => {
      // Steady writes until a held checkpoint, then until the replicator is idle. A notification whose commit a pass
      // already shipped sets off one more pass, which finds nothing and truncates the -wal (right: the tenant went
      // quiet); then there is no log in place to write into, and the writes go on until the next hold.
      const held = () => seen.reported.filter((r) => r.how === 'held').length;
      const db = new Database(ref.path, { readonly: true });
      let written = 0;
      try {
        for (let round = 0; round < 5; round++) {
          const before = held();
          written += await steadyWrites(pool, ref, () => held() > before, () => {}, 1000 + written);
          const txid = (db.prepare('SELECT txid FROM _domicile_meta').get() as { txid: number }).txid;
          for (let i = 0; i < 100 && !(rep.status(ref.tenant)?.replicatedTxid === txid && rep.status(ref.tenant)?.lagMs === 0); i++) {
            await new Promise((r) => setTimeout(r, 20));
          }
          await new Promise((r) => setTimeout(r, 100)); // a trailing pass has run by now
          if (walSize(ref) > 0) break;
        }
      } finally {
        db.close();
      }
      expect(logBytes(ref)).toBeLessThan(walSize(ref)); // the log restarted inside the larger file
      expect(await writeTwiceInPlace(rep, ref)).toBe(true);
      expect(await restoredCount(store, 'ckpt-inplace')).toBe(1 + written + 2);
    });
  });

  it('after a quiet TRUNCATE a reader kept from truncating, a write that restarts the log in place is still shipped', async () => {
    // The interval leaves time to start the reader between the commit and the pass that checkpoints it.
    const { seen, opts } = counted({ checkpointBytes: 64 << 10, checkpointForceBytes: 64 << 20, shipIntervalMs: 500 });
    await withReplicator('ckpt-busy-truncate', opts, async ({ rep, pool, ref, store }) => {
      await pool.batch(ref, [{ sql: 'CREATE TABLE pad (b BLOB)' }, { sql: 'INSERT INTO pad VALUES (randomblob(100000))' }]);
      // A reader in another connection that sees the whole log: the checkpoint folds all of it but cannot
      // truncate the file while the reader is there (busy), and the next write restarts the log in place.
      const reader = new Database(ref.path, { readonly: true });
      try {
        reader.exec('BEGIN');
        reader.prepare('SELECT count(*) FROM pad').get();
        for (let i = 0; i < 250 && !seen.results.some((r) => r.busy !== 0); i++) await new Promise((r) => setTimeout(r, 20));
        expect(seen.results.some((r) => r.busy !== 0 && r.skipped === undefined)).toBe(true);
        reader.exec('COMMIT');
      } finally {
        reader.close();
      }
      expect(walSize(ref)).toBeGreaterThan(64 << 10); // not truncated: the next write restarts the log at its start
      expect(await writeTwiceInPlace(rep, ref)).toBe(true);
      expect(await restoredCount(store, 'ckpt-busy-truncate')).toBe(1 + 2);
    });
  });

  it('truncates the -wal of a tenant whose log may be written in place (here: resumed) once it is idle, then forgets it', async () => {
    const { seen, opts } = counted({ idleForgetMs: 150 });
    await withReplicator('ckpt-trim', opts, async ({ rep, pool, ref, store }) => {
      const forgotten = async () => {
        for (let i = 0; i < 200 && rep.trackedTenants > 0; i++) await new Promise((r) => setTimeout(r, 20));
        return rep.trackedTenants === 0;
      };
      // A tenant that began its generation here is forgotten as it is: its small log stays (below checkpointBytes).
      await pool.query(ref, { sql: 'INSERT INTO kv VALUES (2)' });
      expect(await forgotten()).toBe(true);
      expect(walSize(ref)).toBeGreaterThan(0);
      expect(seen.reported).toEqual([]);
      // Resumed at its next write: the shipper did not see its log begin (a RESTART may have left it large), so
      // once idle it gets one more pass, which finds nothing new and truncates the -wal; then it is forgotten.
      await pool.query(ref, { sql: 'INSERT INTO kv VALUES (3)' });
      for (let i = 0; i < 200 && !(walSize(ref) === 0 && rep.trackedTenants === 0); i++) await new Promise((r) => setTimeout(r, 20));
      expect(walSize(ref)).toBe(0);
      expect(rep.trackedTenants).toBe(0);
      expect(seen.reported.map((r) => r.how)).toEqual(['quiet']);
      expect(await listGenerations(store, 'ckpt-trim', 'inc1')).toHaveLength(1);
      expect(await restoredCount(store, 'ckpt-trim')).toBe(3);
    });
  });
});
