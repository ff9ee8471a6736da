import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '@domicile/testkit/random';
import { DbHashState, DEFAULT_PAGE_HASH, isKnownPageHash, PageHash, pageHash, pageHashName, type PageHashId } from './checksum.ts';

/** Page hash 0 as docs/replication-format.md defines it, computed independently. */
function definedSha256PageHash(pgno: number, page: Uint8Array): bigint {
  const n = Buffer.alloc(4);
  n.writeUInt32BE(pgno);
  return createHash('sha256').update(n).update(page).digest().readBigUInt64BE(0);
}

/** The 4096-byte page of the known answers below: byte i is (i × 7919 + 13) mod 256. */
function knownPage(): Buffer {
  const page = Buffer.alloc(4096);
  for (let i = 0; i < page.length; i++) page[i] = (i * 7919 + 13) & 255;
  return page;
}

/**
 * XXH64(knownPage(), seed = pgno), computed with another implementation of
 * XXH64 (python3-xxhash 3.2.0, Debian bookworm: `xxhash.xxh64(page, seed=pgno).intdigest()`).
 */
const XXH64_KNOWN: ReadonlyArray<[number, bigint]> = [
  [1, 0x80b08c55dc201d5fn],
  [2, 0x07bc269f0d217cb0n],
  [70000, 0x138d0f1d128c4296n],
  [4294967295, 0xa8160eed72c10636n],
];

describe('page hashes', () => {
  it('new generations use XXH64', () => {
    expect(DEFAULT_PAGE_HASH).toBe(PageHash.xxh64);
    expect(new DbHashState().pageHash).toBe(PageHash.xxh64);
  });

  it('hashes a page with XXH64 seeded with its page number (known answers of another implementation)', () => {
    const page = knownPage();
    for (const [pgno, want] of XXH64_KNOWN) {
      expect(pageHash(pgno, page, PageHash.xxh64), `page ${pgno}`).toBe(want);
      expect(pageHash(pgno, page), `page ${pgno}, default`).toBe(want);
    }
    // A view into a larger buffer hashes its own bytes only.
    const big = Buffer.concat([Buffer.alloc(100, 9), page, Buffer.alloc(100, 9)]);
    expect(pageHash(1, new Uint8Array(big.buffer, big.byteOffset + 100, 4096), PageHash.xxh64)).toBe(XXH64_KNOWN[0]![1]);
  });

  it('hashes a page under page hash 0 as the first 8 bytes of SHA-256(u32be(pgno) ‖ page)', () => {
    const page = Buffer.alloc(4096, 0xab);
    for (const pgno of [1, 2, 0xffff, 0xfffffffe]) expect(pageHash(pgno, page, PageHash.sha256)).toBe(definedSha256PageHash(pgno, page));
  });

  it('knows its ids and names them', () => {
    expect([0, 1, 2].map(isKnownPageHash)).toEqual([true, true, false]);
    expect([0, 1, 7].map(pageHashName)).toEqual(['sha256', 'xxh64', 'page hash 7']);
    expect(() => pageHash(1, knownPage(), 7 as PageHashId)).toThrow(/unknown page hash 7/);
  });
});

describe.each([['xxh64', PageHash.xxh64], ['sha256', PageHash.sha256]] as const)('rolling database checksum (%s)', (_name, id) => {
  it('keeps the XOR of the page hashes of the pages present through writes, growth and truncation', () => {
    const r = seededRandom(11);
    const state = new DbHashState(2, id);
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
      for (const [pgno, data] of pages) want ^= id === PageHash.sha256 ? definedSha256PageHash(pgno, data) : pageHash(pgno, data, id);
      expect(state.checksum, `step ${i}`).toBe(want);
    }
  });

  it('changes when content moves between pages', () => {
    const a = Buffer.alloc(512, 1);
    const b = Buffer.alloc(512, 2);
    const one = new DbHashState(2, id);
    one.setPage(1, a);
    one.setPage(2, b);
    const swapped = new DbHashState(2, id);
    swapped.setPage(1, b);
    swapped.setPage(2, a);
    expect(one.checksum).not.toBe(swapped.checksum);
  });
});
