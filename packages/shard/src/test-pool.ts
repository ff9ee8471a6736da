/**
 * Tests only: a one-worker pool on a fresh temp dir with one created tenant,
 * `acme`. The pool and the dir go with `cleanups` (run them in afterEach).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShardPool } from './shard-pool.ts';
import { shardPath } from './shard-path.ts';
import type { ShardRef } from './types.ts';

export async function poolWithOneTenant(prefix: string, cleanups: (() => Promise<void> | void)[]): Promise<{ pool: ShardPool; a: ShardRef }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const pool = new ShardPool({ workers: 1, maxOpenShards: 4, statementTimeoutMs: 5000, maxResultBytes: 1 << 20, maxDbBytes: 1 << 26 });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => pool.close());
  await pool.start();
  const a: ShardRef = { tenant: 'acme', incarnation: 'inc', path: shardPath(dir, 'acme'), epoch: 1 };
  await pool.create(a);
  return { pool, a };
}
