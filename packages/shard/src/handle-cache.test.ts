import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HandleCache, type CloseReason } from './handle-cache.ts';
import { createShard, openShard, type ShardLimits } from './open-shard.ts';
import type { ShardRef } from './types.ts';

const limits: ShardLimits = { statementTimeoutMs: 1000, maxDbBytes: 1 << 24, group: 99 };
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function fixture(n: number) {
  const dir = mkdtempSync(join(tmpdir(), 'domicile-cache-'));
  dirs.push(dir);
  const refs: ShardRef[] = Array.from({ length: n }, (_, i) => ({ tenant: `t${i}`, incarnation: 'i', path: join(dir, `t${i}.db`), epoch: 1 }));
  for (const r of refs) createShard(r, limits).db.close();
  const closes: [string, CloseReason][] = [];
  const cache = new HandleCache({
    max: 2,
    open: (ref) => openShard(ref, limits),
    beforeClose: (h, why) => void closes.push([h.tenant, why]),
  });
  return { refs, cache, closes };
}

describe('HandleCache', () => {
  it('keeps at most max handles and closes the least recently used through beforeClose', () => {
    const { refs, cache, closes } = fixture(3);
    cache.use(refs[0]!, () => undefined);
    cache.use(refs[1]!, () => undefined);
    cache.use(refs[0]!, () => undefined);
    cache.use(refs[2]!, () => undefined);
    expect(closes).toEqual([['t1', 'evict']]);
    expect(cache.stats()).toEqual({ open: 2, opens: 3, evictions: 1 });
    expect(cache.drainClosed()).toEqual(['t1']);
    cache.closeAll('shutdown');
    expect(cache.stats().open).toBe(0);
  });

  it('never closes a pinned handle on eviction, and closes it on unpin', () => {
    const { refs, cache, closes } = fixture(4);
    let pinned: unknown;
    cache.use(refs[0]!, (h) => (pinned = h));
    cache.pin('t0');
    cache.use(refs[1]!, () => undefined);
    cache.use(refs[2]!, () => undefined);
    cache.use(refs[3]!, () => undefined);
    expect(closes.map(([t]) => t)).toEqual(['t1']);
    expect(cache.stats().open).toBe(3);
    // The parked handle is the same connection, still usable.
    cache.use(refs[0]!, (h) => {
      expect(h).toBe(pinned);
      expect(h.db.open).toBe(true);
    });
    cache.unpin('t0');
    expect(closes.map(([t]) => t)).toEqual(['t1', 't0']);
    expect(cache.stats().open).toBe(2);
  });

  it('does not close the handle in use when a nested open would evict it', () => {
    const { refs } = fixture(2);
    const closes: string[] = [];
    const cache = new HandleCache({ max: 1, open: (ref) => openShard(ref, limits), beforeClose: (h) => void closes.push(h.tenant) });
    cache.use(refs[0]!, (h0) => {
      cache.use(refs[1]!, () => undefined);
      expect(h0.db.open).toBe(true);
      expect(closes).toEqual([]);
    });
    expect(closes).toEqual(['t0']);
  });
});
