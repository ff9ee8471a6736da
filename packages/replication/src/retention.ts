/**
 * Retention (DESIGN §8): a generation is needed for a point-in-time restore
 * to any moment from its start until the next generation starts. So once the
 * *next* generation started before the cutoff (`now − retention`), every
 * moment still inside the window is covered by later generations and the
 * older one can go. The newest generation is never pruned. Generation ids
 * carry their creation time (keys.ts `newGenerationId`), so planning needs
 * one listing and no object reads.
 */
import type { ObjectStore } from '@domicile/object-store';
import { generationPrefix, generationsPrefix, parseKey, type GenerationRef } from './keys.ts';

/** Creation time (ms) of a generation id from {@link newGenerationId}. */
export function generationTime(generation: string): number {
  return Number.parseInt(generation.slice(0, 12), 16);
}

/** A generation of a listing and its creation time. */
export interface GenerationStart {
  ref: GenerationRef;
  startedAt: number;
}

/**
 * The generations to prune at `cutoff` (ms): every generation whose
 * successor (in creation order) started at or before the cutoff.
 */
export function planRetention(generations: readonly GenerationStart[], cutoff: number): GenerationStart[] {
  const ordered = [...generations].sort((a, b) => a.startedAt - b.startedAt || a.ref.epoch - b.ref.epoch);
  const out: GenerationStart[] = [];
  for (let i = 0; i + 1 < ordered.length; i++) if (ordered[i + 1]!.startedAt <= cutoff) out.push(ordered[i]!);
  return out;
}

/** Every generation of a tenant incarnation in a bucket, from one listing. */
export async function listGenerationStarts(store: ObjectStore, tenant: string, incarnation: string): Promise<GenerationStart[]> {
  const seen = new Map<string, GenerationStart>();
  for await (const e of store.list(generationsPrefix(tenant, incarnation))) {
    let k;
    try { k = parseKey(e.key); } catch { continue; }
    const id = `${k.epoch}/${k.generation}`;
    if (!seen.has(id)) {
      seen.set(id, { ref: { tenant: k.tenant, incarnation: k.incarnation, epoch: k.epoch, generation: k.generation }, startedAt: generationTime(k.generation) });
    }
  }
  return [...seen.values()];
}

/**
 * Delete the generations that fell out of the retention window; returns
 * what was deleted. Idempotent (a crash halfway leaves a partial generation
 * that the next run deletes; restore never picks a generation that has a
 * newer successor inside the window, see {@link planRetention}).
 */
export async function pruneGenerations(store: ObjectStore, tenant: string, incarnation: string, cutoff: number): Promise<{ generations: number; objects: number }> {
  const prune = planRetention(await listGenerationStarts(store, tenant, incarnation), cutoff);
  let objects = 0;
  for (const g of prune) {
    const keys: string[] = [];
    for await (const e of store.list(generationPrefix(g.ref))) keys.push(e.key);
    // Segments first, the snapshot last: a half-pruned generation never looks restorable from an older state.
    keys.sort((a, b) => Number(a.endsWith('.snap')) - Number(b.endsWith('.snap')));
    await store.deleteMany(keys.filter((k) => !k.endsWith('.snap')));
    await store.deleteMany(keys.filter((k) => k.endsWith('.snap')));
    objects += keys.length;
  }
  return { generations: prune.length, objects };
}
