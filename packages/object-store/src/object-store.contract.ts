import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDomicileError } from '@domicile/errors';
import { isAlreadyExists, isNotFound, type ObjectStore } from './object-store.ts';

/** A fresh, empty store for one test and how to dispose of it. */
export interface ContractFixture {
  store: ObjectStore;
  cleanup(): Promise<void>;
}

/** What the contract needs to know about an implementation beyond the interface. */
export interface ContractOptions {
  /** A store of the same kind that cannot be reached (a closed port, a root under a regular file). */
  makeUnreachableStore(): Promise<ContractFixture>;
  /** Whether the backing server really refuses `ifNoneMatch` overwrites (filesystem: yes; s3rver: no). */
  enforcesConditionalCreate: boolean;
  /**
   * Whether the backing server lists in S3's byte order even where a folder
   * and a sibling key interleave (`a-b` < `a/1`). Default true. s3rver walks
   * its folders instead (`a/1` before `a-b`); AWS S3 and the filesystem store
   * sort by bytes.
   */
  listsInByteOrder?: boolean;
  /** Upper bound for reporting an unreachable store. Default 5000 ms. */
  unreachableWithinMs?: number;
}

const MiB = 1024 * 1024;

/**
 * The one behaviour suite every {@link ObjectStore} must pass (DESIGN §2:
 * interfaces at every boundary, one contract suite per interface, real servers
 * included). Each test gets a fresh store from `makeStore`.
 */
export function describeObjectStoreContract(
  name: string,
  makeStore: () => Promise<ContractFixture>,
  opts: ContractOptions,
): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let fx: ContractFixture;
    let store: ObjectStore;
    beforeEach(async () => {
      fx = await makeStore();
      store = fx.store;
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    it('returns exactly the bytes put, for every byte value', async () => {
      const body = Uint8Array.from({ length: 512 }, (_, i) => i % 256);
      await store.put('bin/all-bytes', body);
      expect(Buffer.from(await store.get('bin/all-bytes')).equals(Buffer.from(body))).toBe(true);
    });

    it('stores a zero-byte object', async () => {
      await store.put('empty', new Uint8Array(0));
      expect((await store.get('empty')).byteLength).toBe(0);
      expect((await store.head('empty'))?.size).toBe(0);
      expect(await collect(store.list('empty'))).toMatchObject([{ key: 'empty', size: 0 }]);
    });

    it('round-trips a 6 MB object and reports its size in head', async () => {
      const body = randomBytes(6 * MiB);
      await store.put('big/six-mb', body);
      const got = await store.get('big/six-mb');
      expect(got.byteLength).toBe(body.byteLength);
      expect(Buffer.from(got).equals(body)).toBe(true);
      const info = await store.head('big/six-mb');
      expect(info?.size).toBe(6 * MiB);
      expect(info?.lastModified).toBeInstanceOf(Date);
    });

    it('puts a stream of unknown length and reads it back as a stream', async () => {
      const body = randomBytes(6 * MiB + 123);
      await store.put('stream/unknown-length', chunked(body, 64 * 1024));
      expect((await store.head('stream/unknown-length'))?.size).toBe(body.byteLength);
      const back = await readAll(await store.getStream('stream/unknown-length'));
      expect(back.equals(body)).toBe(true);
    });

    it('puts a stream with a known contentLength', async () => {
      const body = randomBytes(300_000);
      await store.put('stream/known-length', chunked(body, 10_000), { contentLength: body.byteLength });
      expect(Buffer.from(await store.get('stream/known-length')).equals(body)).toBe(true);
    });

    it('does not show an object until its put completes', async () => {
      const body = randomBytes(256 * 1024);
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      async function* slow(): AsyncGenerator<Uint8Array> {
        yield body.subarray(0, 1024);
        await gate;
        yield body.subarray(1024);
      }
      const put = store.put('slow/object', Readable.from(slow()));
      await new Promise((r) => setTimeout(r, 50));
      expect(await store.head('slow/object')).toBeNull();
      expect(await collect(store.list('slow/'))).toEqual([]);
      release();
      await put;
      expect(Buffer.from(await store.get('slow/object')).equals(body)).toBe(true);
    });

    it('replaces an object when put without ifNoneMatch', async () => {
      await store.put('over/write', Buffer.from('first'));
      await store.put('over/write', Buffer.from('second, longer'));
      expect(Buffer.from(await store.get('over/write')).toString()).toBe('second, longer');
    });

    it('creates an object with ifNoneMatch when none exists', async () => {
      await store.put('once/new', Buffer.from('v1'), { ifNoneMatch: true });
      expect(Buffer.from(await store.get('once/new')).toString()).toBe('v1');
    });

    it.skipIf(!opts.enforcesConditionalCreate)('refuses to overwrite with ifNoneMatch and keeps the first object', async () => {
      await store.put('once/key', Buffer.from('v1'), { ifNoneMatch: true });
      const err = await store.put('once/key', Buffer.from('v2'), { ifNoneMatch: true }).catch((e: unknown) => e);
      expect(isAlreadyExists(err)).toBe(true);
      expect(isNotFound(err)).toBe(false);
      expect(Buffer.from(await store.get('once/key')).toString()).toBe('v1');
      // The refused write leaves nothing visible behind (no temp objects).
      expect((await collect(store.list(''))).map((e) => e.key)).toEqual(['once/key']);
    });

    it('reports a missing object: head → null, get and getStream → NOT_FOUND', async () => {
      expect(await store.head('missing/key')).toBeNull();
      const e1 = await store.get('missing/key').catch((e: unknown) => e);
      expect(isNotFound(e1)).toBe(true);
      expect(isDomicileError(e1) && e1.code).toBe('NOT_FOUND');
      const e2 = await store.getStream('missing/key').catch((e: unknown) => e);
      expect(isNotFound(e2)).toBe(true);
    });

    it('treats a "directory" of other keys as a missing object', async () => {
      await store.put('dir/child', Buffer.from('x'));
      expect(await store.head('dir')).toBeNull();
      expect(isNotFound(await store.get('dir').catch((e: unknown) => e))).toBe(true);
      await store.delete('dir');
      expect(await store.head('dir/child')).not.toBeNull();
    });

    it('deletes idempotently', async () => {
      await store.put('del/one', Buffer.from('x'));
      await store.delete('del/one');
      await store.delete('del/one');
      await store.delete('del/never-existed');
      expect(await store.head('del/one')).toBeNull();
      expect(isNotFound(await store.get('del/one').catch((e: unknown) => e))).toBe(true);
      expect(await collect(store.list('del/'))).toEqual([]);
    });

    it('lists by prefix in lexical byte order, with sizes', async () => {
      const keys = ['a/2', 'a/1', 'a-b', 'ab/x', 'b', 'a/10', 'a/sub/deep/z', 'a/é', 'a/\u{1F600}', 'a/\uFF5E'];
      await Promise.all(keys.map((k, i) => store.put(k, new Uint8Array(i))));
      const all = await collect(store.list(''));
      if (opts.listsInByteOrder === false) {
        // Only the set is portable to such a server; see ContractOptions.listsInByteOrder.
        expect([...all.map((e) => e.key)].sort()).toEqual([...keys].sort());
        return;
      }
      expect(all.map((e) => e.key)).toEqual(byteSorted(keys));
      expect(all.find((e) => e.key === 'b')?.size).toBe(keys.indexOf('b'));
      expect(all.every((e) => e.lastModified instanceof Date)).toBe(true);
      expect((await collect(store.list('a/'))).map((e) => e.key)).toEqual(
        byteSorted(keys.filter((k) => k.startsWith('a/'))),
      );
      // A prefix that ends inside a segment matches keys and "directories" alike.
      expect((await collect(store.list('a'))).map((e) => e.key)).toEqual(byteSorted(keys.filter((k) => k.startsWith('a'))));
      expect((await collect(store.list('a/1'))).map((e) => e.key)).toEqual(['a/1', 'a/10']);
      expect(await collect(store.list('nothing/'))).toEqual([]);
      expect(await collect(store.list('a/sub/deep/zz'))).toEqual([]);
    });

    it('resumes a listing after startAfter', async () => {
      const keys = ['s/a', 's/b/1', 's/b/2', 's/c'];
      await Promise.all(keys.map((k) => store.put(k, Buffer.from(k))));
      expect((await collect(store.list('s/', { startAfter: 's/b/1' }))).map((e) => e.key)).toEqual(['s/b/2', 's/c']);
      expect((await collect(store.list('s/', { startAfter: 's/b' }))).map((e) => e.key)).toEqual(['s/b/1', 's/b/2', 's/c']);
    });

    it('lists more than 1000 keys in order across pages, then deleteMany removes them all', async () => {
      const keys = Array.from({ length: 1100 }, (_, i) => `many/${i % 7}/k${i}`);
      await mapLimit(keys, 24, (k) => store.put(k, Buffer.from(k)));
      await store.put('other/keep', Buffer.from('keep'));
      const listed = await collect(store.list('many/'));
      expect(listed.length).toBe(1100);
      expect(listed.map((e) => e.key)).toEqual(byteSorted(keys));
      await store.deleteMany([...keys, 'many/never-existed']);
      expect(await collect(store.list('many/'))).toEqual([]);
      expect((await collect(store.list(''))).map((e) => e.key)).toEqual(['other/keep']);
    }, 60_000);

    it('deleteMany of nothing is a no-op', async () => {
      await store.deleteMany([]);
    });

    it('refuses unsafe keys with BAD_REQUEST before touching the store', async () => {
      const bad = ['', '/abs', 'a/../b', '..', '../x', 'a\\b', 'a\0b', 'a//b', 'a/', '.hidden', 'a/.tmp', 'x\ny'];
      for (const key of bad) {
        for (const op of [
          () => store.put(key, Buffer.from('x')),
          () => store.get(key),
          () => store.head(key),
          () => store.delete(key),
          () => store.deleteMany(['ok', key]),
        ]) {
          const err = await op().catch((e: unknown) => e);
          expect(isDomicileError(err) && err.code, `key ${JSON.stringify(key)}`).toBe('BAD_REQUEST');
        }
      }
      const err = await collect(store.list('../')).catch((e: unknown) => e);
      expect(isDomicileError(err) && err.code).toBe('BAD_REQUEST');
    });

    it('describes itself without secrets', () => {
      const d = store.describe();
      expect(d).toMatch(/^(file|s3):\/\//);
      expect(d).not.toMatch(/:[^/@]*@/);
    });

    it('reports an unreachable store as REPLICATION_UNAVAILABLE, quickly, for every operation', async () => {
      const dead = await opts.makeUnreachableStore();
      try {
        const limit = opts.unreachableWithinMs ?? 5000;
        const ops: Array<[string, () => Promise<unknown>]> = [
          ['put', () => dead.store.put('k/x', Buffer.from('x'))],
          ['get', () => dead.store.get('k/x')],
          ['getStream', () => dead.store.getStream('k/x')],
          ['head', () => dead.store.head('k/x')],
          ['list', () => collect(dead.store.list('k/'))],
          ['delete', () => dead.store.delete('k/x')],
          ['deleteMany', () => dead.store.deleteMany(['k/x', 'k/y'])],
        ];
        await Promise.all(
          ops.map(async ([op, run]) => {
            const t0 = Date.now();
            const err = await run().then(
              () => undefined,
              (e: unknown) => e,
            );
            const ms = Date.now() - t0;
            expect(isDomicileError(err) && err.code, op).toBe('REPLICATION_UNAVAILABLE');
            expect(ms, op).toBeLessThan(limit);
            if (!isDomicileError(err)) return;
            expect(err.details.store, op).toBe(dead.store.describe());
            expect(err.cause, op).toBeDefined();
            expect(err.retryAfterSeconds, op).toBeGreaterThan(0);
          }),
        );
      } finally {
        await dead.cleanup();
      }
    }, 30_000);
  });
}

/** Drain an async iterable into an array. */
export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

function byteSorted(keys: string[]): string[] {
  return [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

function chunked(body: Buffer, size: number): Readable {
  async function* gen(): AsyncGenerator<Buffer> {
    for (let i = 0; i < body.byteLength; i += size) yield body.subarray(i, i + size);
  }
  return Readable.from(gen());
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

async function mapLimit<T>(items: T[], limit: number, fn: (x: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}
