// The pool with replication on (DESIGN §8): no checkpoint on close or
// eviction (the -wal keeps every committed frame), checkpoints only through
// `maintenance` jobs in the tenant's queue, and `onCommit` after each request.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ShardPool } from './shard-pool.ts';
import { shardPath } from './shard-path.ts';
import type { ShardRef } from './types.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const walBytes = (p: string) => (existsSync(`${p}-wal`) ? statSync(`${p}-wal`).size : 0);

async function setup(replication: boolean, notified: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), 'domicile-shard-repl-'));
  const pool = new ShardPool({
    workers: 2, maxOpenShards: 2, statementTimeoutMs: 5000, maxResultBytes: 1 << 20, maxDbBytes: 1 << 26,
    replication, onCommit: (ref) => notified.push(ref.tenant),
  });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => pool.close());
  await pool.start();
  const ref = (tenant: string): ShardRef => ({ tenant, incarnation: `inc-${tenant}`, path: shardPath(dir, tenant), epoch: 1 });
  return { pool, ref };
}

describe('ShardPool with replication on', () => {
  it('never checkpoints on eviction or close; maintenance checkpoints and copies in the tenant queue', async () => {
    const notified: string[] = [];
    const { pool, ref } = await setup(true, notified);
    const refs = ['a', 'b', 'c'].map(ref);
    for (const r of refs) {
      await pool.create(r);
      await pool.query(r, { sql: 'CREATE TABLE t (x)' });
    }
    for (let i = 0; i < 5; i++) for (const r of refs) await pool.query(r, { sql: 'INSERT INTO t VALUES (?)', params: [i] });
    expect(pool.stats().evictions).toBeGreaterThan(0);
    expect(notified.filter((t) => t === 'a').length).toBeGreaterThanOrEqual(7);
    for (const r of refs) expect(walBytes(r.path)).toBeGreaterThan(0);
    const a = refs[0]!;
    const before = walBytes(a.path);
    const skipped = await pool.maintenance(a, { op: 'checkpoint', expectWalBytes: before + 1 });
    expect(skipped.skipped).toBe('wal-changed');
    expect(walBytes(a.path)).toBe(before);
    const copy = `${a.path}.copy`;
    const res = await pool.maintenance(a, { op: 'snapshot-copy', dest: copy });
    expect(res).toMatchObject({ busy: 0, copied: true });
    expect(walBytes(a.path)).toBe(0);
    expect(readFileSync(copy).equals(readFileSync(a.path))).toBe(true);
    await pool.close();
    // Closing every handle left the other tenants' frames in their -wal.
    for (const r of refs.slice(1)) expect(walBytes(r.path)).toBeGreaterThan(0);
  });

  it('replication off keeps checkpoint on close', async () => {
    const { pool, ref } = await setup(false);
    const r = ref('z');
    await pool.create(r);
    await pool.query(r, { sql: 'CREATE TABLE t (x)' });
    await pool.close();
    expect(walBytes(r.path)).toBe(0);
  });
});
