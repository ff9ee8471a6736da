import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { seededRandom } from '@domicile/testkit/random';
import { DbHashState, PageHash, type PageHashId } from './checksum.ts';
import { fileChecksum } from './file-checksum.ts';

const dir = mkdtempSync(join(tmpdir(), 'file-checksum-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A file of `pages` random pages and its checksum, built page by page through DbHashState (the shipper's way). */
function randomFile(name: string, pageSize: number, pages: number, seed: number, id: PageHashId): { path: string; bytes: Buffer; want: bigint } {
  const r = seededRandom(seed);
  const bytes = Buffer.alloc(pageSize * pages);
  for (let i = 0; i < bytes.length; i += 4) bytes.writeUInt32LE(Math.floor(r() * 2 ** 32), i);
  const state = new DbHashState(64, id);
  for (let p = 1; p <= pages; p++) state.setPage(p, bytes.subarray((p - 1) * pageSize, p * pageSize));
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return { path, bytes, want: state.checksum };
}

describe('fileChecksum', () => {
  // threadFrom 1: every file on a worker thread; Infinity: every file on this one. Both page hashes.
  describe.each([
    ['on a worker thread, xxh64', 1, PageHash.xxh64], ['on the calling thread, xxh64', Infinity, PageHash.xxh64],
    ['on a worker thread, sha256', 1, PageHash.sha256], ['on the calling thread, sha256', Infinity, PageHash.sha256],
  ] as const)('%s', (_name, threadFrom, id) => {
    it.each([[512, 1], [1024, 300], [4096, 257]])('equals the page-by-page checksum (page size %i, %i pages)', async (pageSize, pages) => {
      const f = randomFile(`f-${threadFrom}-${id}-${pageSize}-${pages}`, pageSize, pages, pageSize + pages, id);
      expect(await fileChecksum(f.path, pageSize, pages, id, { threadFrom })).toBe(f.want);
      // The page hash asked for is the one used (on the worker thread too).
      expect(await fileChecksum(f.path, pageSize, pages, id === PageHash.xxh64 ? PageHash.sha256 : PageHash.xxh64, { threadFrom })).not.toBe(f.want);
      // One changed byte, anywhere, changes it.
      const at = Math.floor(f.bytes.length / 3);
      f.bytes[at]! ^= 0x40;
      writeFileSync(f.path, f.bytes);
      expect(await fileChecksum(f.path, pageSize, pages, id, { threadFrom })).not.toBe(f.want);
    });

    it('is 0 for no pages and refuses a file shorter than its page count', async () => {
      const f = randomFile(`short-${threadFrom}-${id}`, 1024, 10, 7, id);
      expect(await fileChecksum(f.path, 1024, 0, id, { threadFrom })).toBe(0n);
      truncateSync(f.path, 1024 * 9 + 100);
      await expect(fileChecksum(f.path, 1024, 10, id, { threadFrom })).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/ends before page 10 of 10/) });
      await expect(fileChecksum(join(dir, 'missing'), 1024, 1, id, { threadFrom })).rejects.toMatchObject({ code: 'INTERNAL' });
    });
  });
});
