import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrationChecksum } from '@domicile/shard';
import type { SchemaStore } from './schema-store.ts';

/** Builds a fresh, empty store for one test and tears it down after. */
export type SchemaStoreFactory = () => Promise<{ store: SchemaStore; cleanup: () => Promise<void> }>;

const m1 = { name: '0001_init', sql: 'CREATE TABLE a (x);' };
const m2 = { name: '0002_more', sql: 'CREATE TABLE b (x);\nCREATE INDEX b_x ON b (x);' };
const m3 = { name: '0010-later', sql: 'ALTER TABLE a ADD COLUMN y;' };

/** The one contract every SchemaStore implementation must pass. */
export function describeSchemaStoreContract(name: string, factory: SchemaStoreFactory): void {
  describe(`SchemaStore contract: ${name}`, () => {
    let store: SchemaStore;
    let cleanup: () => Promise<void>;
    beforeEach(async () => ({ store, cleanup } = await factory()));
    afterEach(async () => cleanup());

    it('starts empty and stores a list in order with checksums', async () => {
      expect(await store.list()).toEqual([]);
      const r = await store.put([m1, m2]);
      expect(r.added).toEqual(['0001_init', '0002_more']);
      const list = await store.list();
      expect(list.map((m) => [m.name, m.sql, m.checksum])).toEqual([
        [m1.name, m1.sql, migrationChecksum(m1.sql)], [m2.name, m2.sql, migrationChecksum(m2.sql)],
      ]);
      expect(Date.parse(list[0]!.storedAt)).not.toBeNaN();
      expect(r.migrations).toEqual(list);
    });

    it('appends only the new tail and treats the same list as a no-op', async () => {
      await store.put([m1]);
      const before = await store.list();
      expect((await store.put([m1])).added).toEqual([]);
      expect((await store.put([m1, m2, m3])).added).toEqual(['0002_more', '0010-later']);
      const after = await store.list();
      expect(after.map((m) => m.name)).toEqual(['0001_init', '0002_more', '0010-later']);
      expect(after[0]).toEqual(before[0]);
    });

    it.each([
      ['changed', [{ ...m1, sql: `${m1.sql} ` }, m2], '0001_init'],
      ['missing', [m2], '0001_init'],
      ['missing', [], '0001_init'],
      ['order', [m2, m1], '0001_init'],
    ] as const)('refuses to rewrite history with SCHEMA_CONFLICT (%s) and keeps the stored list', async (reason, list, culprit) => {
      await store.put([m1, m2]);
      const before = await store.list();
      if (reason === 'order') {
        // A reordered list also breaks the numbering rule; the store checks the list itself first.
        await expect(store.put(list)).rejects.toMatchObject({ code: 'BAD_REQUEST', details: { reason: 'order' } });
      } else {
        await expect(store.put(list)).rejects.toMatchObject({ code: 'SCHEMA_CONFLICT', details: { name: culprit, reason } });
      }
      expect(await store.list()).toEqual(before);
    });

    it('refuses a stored migration moved behind a new one with SCHEMA_CONFLICT (order)', async () => {
      await store.put([m1, m3]);
      await expect(store.put([m1, m2, m3])).rejects.toMatchObject({ code: 'SCHEMA_CONFLICT', details: { name: '0010-later', reason: 'order' } });
      expect((await store.list()).map((m) => m.name)).toEqual(['0001_init', '0010-later']);
    });

    it.each([
      [[{ name: 'init', sql: 'SELECT 1' }], 'invalid-name'],
      [[{ name: '0001/../x', sql: 'SELECT 1' }], 'invalid-name'],
      [[{ name: '0002_b', sql: 'SELECT 1' }, { name: '0002_a', sql: 'SELECT 1' }], 'order'],
      [[{ name: '0001', sql: '  \n' }], 'empty'],
    ])('refuses a malformed list %j with BAD_REQUEST (%s) and stores nothing', async (list, reason) => {
      await expect(store.put(list)).rejects.toMatchObject({ code: 'BAD_REQUEST', details: { reason } });
      expect(await store.list()).toEqual([]);
    });

    it('serializes concurrent puts: both succeed when one extends the other, history stays one list', async () => {
      const [a, b] = await Promise.allSettled([store.put([m1, m2]), store.put([m1, m2, m3])]);
      expect(a.status).toBe('fulfilled');
      expect(b.status).toBe('fulfilled');
      expect((await store.list()).map((m) => m.name)).toEqual(['0001_init', '0002_more', '0010-later']);
    });
  });
}
