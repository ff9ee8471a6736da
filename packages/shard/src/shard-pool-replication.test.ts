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
    // A mark one frame before the end: the log holds a frame the "shipper" has not read.
    const header = readFileSync(`${a.path}-wal`);
    const behind = { salt1: header.readUInt32BE(16), salt2: header.readUInt32BE(20), offset: before - (24 + header.readUInt32BE(8)) };
    const skipped = await pool.maintenance(a, { op: 'checkpoint', expectWal: behind });
    expect(skipped.skipped).toBe('wal-changed');
    expect(walBytes(a.path)).toBe(before);
    // RESTART at the end of the log: the log is folded in place, the file keeps its size.
    const restarted = await pool.maintenance(a, { op: 'checkpoint', mode: 'RESTART', expectWal: { ...behind, offset: before } });
    expect(restarted).toMatchObject({ busy: 0 });
    expect(restarted.skipped).toBeUndefined();
    expect(walBytes(a.path)).toBe(before);
    expect(await pool.query(a, { sql: 'SELECT count(*) AS n FROM t' })).toMatchObject({ rows: [[5]] });
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
