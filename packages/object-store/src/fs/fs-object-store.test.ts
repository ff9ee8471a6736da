import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isDomicileError } from '@domicile/errors';
import { collect, describeObjectStoreContract } from '../object-store.contract.ts';
import { FsObjectStore } from './fs-object-store.ts';

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'domicile-fs-store-'));
}

describeObjectStoreContract(
  'fs',
  async () => {
    const dir = await tempDir();
    const store = new FsObjectStore(path.join(dir, 'bucket'));
    return { store, cleanup: () => rm(dir, { recursive: true, force: true }) };
  },
  {
    enforcesConditionalCreate: true,
    // A root below a regular file can never be created: every operation fails with ENOTDIR.
    async makeUnreachableStore() {
      const dir = await tempDir();
      await writeFile(path.join(dir, 'file'), 'x');
      const store = new FsObjectStore(path.join(dir, 'file', 'bucket'));
      return { store, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
    unreachableWithinMs: 1000,
  },
);

describe('FsObjectStore', () => {
  it('keeps keys inside the root and lays them out as files', async () => {
    const dir = await tempDir();
    try {
      const store = new FsObjectStore(dir);
      await store.put('t/acme/gen-1/seg', Buffer.from('x'));
      expect(await readdir(path.join(dir, 't', 'acme', 'gen-1'))).toEqual(['seg']);
      expect(store.describe()).toBe(`file://${dir}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('leaves no temp files after puts and removes emptied folders on delete', async () => {
    const dir = await tempDir();
    try {
      const store = new FsObjectStore(dir);
      await store.put('a/b/c', Buffer.from('x'));
      await store.put('a/b/c', Buffer.from('y'), { ifNoneMatch: true }).catch(() => undefined);
      expect(await readdir(path.join(dir, '.domicile-tmp'))).toEqual([]);
      await store.delete('a/b/c');
      expect((await readdir(dir)).filter((n) => !n.startsWith('.'))).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('lets exactly one of many concurrent ifNoneMatch puts win', async () => {
    const dir = await tempDir();
    try {
      const store = new FsObjectStore(dir);
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => store.put('race/key', Buffer.from(`writer ${i}`), { ifNoneMatch: true })),
      );
      const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      expect(winners).toHaveLength(1);
      expect(Buffer.from(await store.get('race/key')).toString()).toBe(`writer ${winners[0]}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a key that is also a folder of keys with BAD_REQUEST key-conflict', async () => {
    const dir = await tempDir();
    try {
      const store = new FsObjectStore(dir);
      await store.put('x/y', Buffer.from('1'));
      const e1 = await store.put('x', Buffer.from('2')).catch((e: unknown) => e);
      expect(isDomicileError(e1) && [e1.code, e1.details.reason]).toEqual(['BAD_REQUEST', 'key-conflict']);
      await store.put('f', Buffer.from('3'));
      const e2 = await store.put('f/g', Buffer.from('4')).catch((e: unknown) => e);
      expect(isDomicileError(e2) && [e2.code, e2.details.reason]).toEqual(['BAD_REQUEST', 'key-conflict']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('lists nothing when the root does not exist yet', async () => {
    const store = new FsObjectStore(path.join(tmpdir(), 'domicile-no-such-root-' + process.pid));
    expect(await collect(store.list(''))).toEqual([]);
    expect(await store.head('a')).toBeNull();
  });

  it('rejects a relative root', () => {
    expect(() => new FsObjectStore('relative/dir')).toThrow(/absolute/);
  });

  it('puts again after its directories were removed behind its back (the dirs it remembers are checked by the put itself)', async () => {
    const dir = await tempDir();
    try {
      const root = path.join(dir, 'bucket');
      const store = new FsObjectStore(root);
      const other = new FsObjectStore(root);
      await store.put('t/a/1', Buffer.from('one'));
      // Another store (another process) deletes the only object: the directories t/a and t are pruned.
      await other.delete('t/a/1');
      await store.put('t/a/2', Buffer.from('two'), { ifNoneMatch: true });
      expect(Buffer.from(await store.get('t/a/2')).toString()).toBe('two');
      // The whole bucket wiped by hand, temp directory included, after a store made its directories.
      const third = new FsObjectStore(root);
      await third.put('t/b/1', Buffer.from('one'));
      await rm(root, { recursive: true, force: true });
      await third.put('t/b/2', Buffer.from('two'));
      expect(Buffer.from(await third.get('t/b/2')).toString()).toBe('two');
      expect(await readdir(path.join(root, '.domicile-tmp'))).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
