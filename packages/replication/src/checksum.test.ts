import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '@domicile/testkit/random';
import { DbHashState, pageHash } from './checksum.ts';

/** The page hash as docs/replication-format.md defines it, computed independently. */
function definedPageHash(pgno: number, page: Uint8Array): bigint {
  const n = Buffer.alloc(4);
  n.writeUInt32BE(pgno);
  return createHash('sha256').update(n).update(page).digest().readBigUInt64BE(0);
}

describe('rolling database checksum', () => {
  it('hashes a page as the first 8 bytes of SHA-256(u32be(pgno) ‖ page)', () => {
    const page = Buffer.alloc(4096, 0xab);
    for (const pgno of [1, 2, 0xffff, 0xfffffffe]) expect(pageHash(pgno, page)).toBe(definedPageHash(pgno, page));
  });

  it('keeps the XOR of the page hashes of the pages present through writes, growth and truncation', () => {
    const r = seededRandom(11);
    const state = new DbHashState(2);
    const pages = new Map<number, Uint8Array>();
    for (let i = 0; i < 300; i++) {
      if (r() < 0.1) {
        const size = Math.floor(r() * (state.pageCount + 1));
        state.resize(size);
        for (const p of pages.keys()) if (p > size) pages.delete(p);
      } else {
        const pgno = 1 + Math.floor(r() * 40);
        const data = Buffer.alloc(512);
        for (let b = 0; b < data.length; b++) data[b] = Math.floor(r() * 256);
        state.setPage(pgno, data);
        pages.set(pgno, data);
      }
      let want = 0n;
      for (const [pgno, data] of pages) want ^= definedPageHash(pgno, data);
      expect(state.checksum, `step ${i}`).toBe(want);
    }
  });
});
