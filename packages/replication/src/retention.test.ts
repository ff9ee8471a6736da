import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '@domicile/object-store';
import { newGenerationId, segmentKey, snapshotKey, type GenerationRef } from './keys.ts';
import { generationTime, planRetention, pruneGenerations } from './retention.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'domicile-retention-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOUR = 3_600_000;
const ref = (epoch: number, startedAt: number): GenerationRef => ({ tenant: 'acme', incarnation: 'inc1', epoch, generation: newGenerationId(startedAt) });

describe('retention', () => {
  it('reads the creation time back from a generation id', () => {
    expect(generationTime(newGenerationId(1_700_000_000_123))).toBe(1_700_000_000_123);
  });

  it('prunes a generation only once its successor started before the cutoff; never the newest', () => {
    const t0 = 1_000 * HOUR;
    const gens = [0, 1, 2, 3].map((h) => ({ ref: ref(1, t0 + h * HOUR), startedAt: t0 + h * HOUR }));
    // Cutoff between gen 1 and gen 2: gen 0 (successor 1 started before) goes; gen 1 covers the cutoff moment and stays.
    expect(planRetention(gens, t0 + 1.5 * HOUR).map((g) => g.startedAt)).toEqual([t0]);
    expect(planRetention(gens, t0 + 2 * HOUR).map((g) => g.startedAt)).toEqual([t0, t0 + HOUR]);
    // Far in the future: all but the newest.
    expect(planRetention(gens, t0 + 100 * HOUR)).toHaveLength(3);
    expect(planRetention(gens.slice(3), t0 + 100 * HOUR)).toEqual([]);
  });

  it('deletes every object of the pruned generations and nothing else', async () => {
    const store = new FsObjectStore(path.join(dir, 'b1'));
    const t0 = 2_000 * HOUR;
    const refs = [ref(1, t0), ref(1, t0 + HOUR), ref(2, t0 + 2 * HOUR)];
    for (const [i, r] of refs.entries()) {
      await store.put(snapshotKey(r, 10 * i), new Uint8Array([1]));
      await store.put(segmentKey(r, 10 * i + 1, 10 * i + 5), new Uint8Array([2]));
    }
    await store.put('tenants/other/inc9/generations/x', new Uint8Array([3]));
    const res = await pruneGenerations(store, 'acme', 'inc1', t0 + 1.5 * HOUR);
    expect(res).toEqual({ generations: 1, objects: 2 });
    const left: string[] = [];
    for await (const e of store.list('tenants/')) left.push(e.key);
    expect(left.sort()).toEqual([
      segmentKey(refs[1]!, 11, 15), snapshotKey(refs[1]!, 10), segmentKey(refs[2]!, 21, 25), snapshotKey(refs[2]!, 20), 'tenants/other/inc9/generations/x',
    ].sort());
    // Idempotent.
    expect(await pruneGenerations(store, 'acme', 'inc1', t0 + 1.5 * HOUR)).toEqual({ generations: 0, objects: 0 });
  });
});
