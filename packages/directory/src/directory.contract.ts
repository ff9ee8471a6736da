import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Directory, TenantRecord } from './directory.ts';

/** Builds a fresh, empty directory for one test and tears it down after. */
export type DirectoryFactory = () => Promise<{ directory: Directory; cleanup: () => Promise<void> }>;

const record = (id: string, over: Partial<TenantRecord> = {}): TenantRecord => ({
  id, incarnation: randomUUID(), residency: 'eu', region: 'eu-west', node: 'eu-west-1', epoch: 1,
  state: 'active', durability: 'async', createdAt: new Date().toISOString(), tokensValidAfter: 0, ...over,
});

/** The one contract every Directory implementation must pass (DESIGN §2). */
export function describeDirectoryContract(name: string, factory: DirectoryFactory): void {
  describe(`Directory contract: ${name}`, () => {
    let dir: Directory;
    let cleanup: () => Promise<void>;
    beforeEach(async () => ({ directory: dir, cleanup } = await factory()));
    afterEach(async () => cleanup());

    it('creates and reads back a tenant record unchanged', async () => {
      const r = record('acme');
      await dir.create(r);
      expect(await dir.get('acme')).toEqual(r);
      expect(await dir.get('other')).toBeUndefined();
    });

    it('refuses a second tenant with the same id with TENANT_EXISTS and keeps the first', async () => {
      const first = record('acme');
      await dir.create(first);
      await expect(dir.create(record('acme'))).rejects.toMatchObject({ code: 'TENANT_EXISTS' });
      expect((await dir.get('acme'))?.incarnation).toBe(first.incarnation);
    });

    it('lists in id order across pages with filters', async () => {
      for (let i = 0; i < 25; i++) {
        await dir.create(record(`t${String(i).padStart(2, '0')}`, i % 2 ? { region: 'us-east', residency: 'us' } : {}));
      }
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await dir.list({ limit: 7, ...(cursor ? { cursor } : {}) });
        expect(page.tenants.length).toBeLessThanOrEqual(7);
        seen.push(...page.tenants.map((t) => t.id));
        cursor = page.nextCursor;
      } while (cursor);
      expect(seen).toEqual([...seen].sort());
      expect(seen).toHaveLength(25);
      const us = await dir.list({ limit: 100, region: 'us-east' });
      expect(us.tenants).toHaveLength(12);
      expect(us.tenants.every((t) => t.region === 'us-east')).toBe(true);
      expect(us.nextCursor).toBeUndefined();
      const counts = await dir.countByRegion();
      expect(counts.get('us-east')).toBe(12);
      expect(counts.get('eu-west')).toBe(13);
    });

    it('rejects a cursor that is not one of its own with BAD_REQUEST', async () => {
      await expect(dir.list({ limit: 10, cursor: '../../etc' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    });

    it('compare-and-set applies only on the expected incarnation and epoch', async () => {
      const r = await dir.create(record('acme'));
      const moved = await dir.compareAndSet('acme', { incarnation: r.incarnation, epoch: 1 }, { region: 'eu-central', node: 'n2', epoch: 2 });
      expect(moved).toMatchObject({ region: 'eu-central', node: 'n2', epoch: 2 });
      // A holder of the old epoch loses.
      expect(await dir.compareAndSet('acme', { incarnation: r.incarnation, epoch: 1 }, { epoch: 2 })).toBeUndefined();
      expect(await dir.compareAndSet('acme', { incarnation: 'other', epoch: 2 }, { epoch: 3 })).toBeUndefined();
      expect((await dir.get('acme'))?.epoch).toBe(2);
      await expect(dir.compareAndSet('ghost', { incarnation: 'x', epoch: 1 }, { epoch: 2 })).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' });
    });

    it('lets exactly one of many concurrent compare-and-sets with the same expectation win', async () => {
      const r = await dir.create(record('acme'));
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
        dir.compareAndSet('acme', { incarnation: r.incarnation, epoch: 1 }, { node: `n${i}`, epoch: 2 })));
      const winners = results.filter((x) => x !== undefined);
      expect(winners).toHaveLength(1);
      expect(await dir.get('acme')).toMatchObject({ epoch: 2, node: winners[0]!.node });
    });

    it('keeps listing and counts in line with moves and removals', async () => {
      const a = await dir.create(record('a1'));
      await dir.create(record('a2'));
      await dir.compareAndSet('a1', { incarnation: a.incarnation, epoch: 1 }, { region: 'us-east', node: 'us-east-1', epoch: 2 });
      expect((await dir.list({ limit: 10, region: 'us-east' })).tenants.map((t) => t.id)).toEqual(['a1']);
      expect((await dir.list({ limit: 10, node: 'eu-west-1' })).tenants.map((t) => t.id)).toEqual(['a2']);
      expect((await dir.list({ limit: 10, residency: 'eu', region: 'eu-west' })).tenants.map((t) => t.id)).toEqual(['a2']);
      expect(Object.fromEntries(await dir.countByRegion())).toEqual({ 'us-east': 1, 'eu-west': 1 });
      expect(await dir.remove('a1', a.incarnation)).toBe(true);
      expect((await dir.list({ limit: 10 })).tenants.map((t) => t.id)).toEqual(['a2']);
      expect(Object.fromEntries(await dir.countByRegion())).toEqual({ 'eu-west': 1 });
    });

    it('removes only the named incarnation', async () => {
      const r = await dir.create(record('acme'));
      expect(await dir.remove('acme', 'not-this-one')).toBe(false);
      expect(await dir.get('acme')).toBeDefined();
      expect(await dir.remove('acme', r.incarnation)).toBe(true);
      expect(await dir.get('acme')).toBeUndefined();
      expect(await dir.remove('acme', r.incarnation)).toBe(false);
    });
  });
}
