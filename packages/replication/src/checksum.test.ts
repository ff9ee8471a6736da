import { describe, expect, it } from 'vitest';
import { seededRandom } from '@domicile/testkit/random';
import { DbHashState, applyTransactionHashes, deferTransactionHashes, flushPendingHashes } from './checksum.ts';


const PAGE = 64;

/** A random transaction over a database of `size` pages: rewrites, growth, truncation (as SQLite's WAL can carry). */
function randomTx(r: () => number, size: number) {
  const truncateTo = r() < 0.1 ? Math.floor(r() * (size + 1)) : Number.MAX_SAFE_INTEGER;
  const base = Math.min(truncateTo, size);
  const commitSize = Math.max(1, r() < 0.2 ? base + 1 + Math.floor(r() * 4) : r() < 0.05 ? Math.floor(r() * (base + 1)) : Math.max(base, 1));
  const pages: Array<{ pgno: number; data: Uint8Array }> = [];
  const n = 1 + Math.floor(r() * 5);
  for (let i = 0; i < n; i++) {
    // Mostly pages that exist after the commit, sometimes one past it (dropped by the commit size).
    const pgno = 1 + Math.floor(r() * (commitSize + (r() < 0.05 ? 2 : 0)));
    const data = new Uint8Array(PAGE).map(() => Math.floor(r() * 256));
    pages.push({ pgno, data });
  }
  pages.sort((a, b) => a.pgno - b.pgno);
  return { truncateTo, commitSize, pages };
}

describe('deferred page hashes', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('equal the transactions applied one by one at every flush (seed %i)', (seed) => {
    const r = seededRandom(seed);
    const eager = new DbHashState();
    const lazy = new DbHashState();
    const pending = new Map<number, Uint8Array>();
    let hashedLazily = 0;
    let hashedEagerly = 0;
    for (let i = 0; i < 400; i++) {
      const tx = randomTx(r, eager.pageCount);
      const want = applyTransactionHashes(eager, tx);
      hashedEagerly += tx.pages.length;
      deferTransactionHashes(lazy, pending, tx);
      expect(lazy.pageCount, `tx ${i}`).toBe(eager.pageCount);
      if (r() < 0.15) {
        hashedLazily += pending.size;
        expect(flushPendingHashes(lazy, pending), `flush after tx ${i}`).toBe(want);
        expect(lazy.missingPages()).toBe(eager.missingPages());
      }
    }
    hashedLazily += pending.size;
    expect(flushPendingHashes(lazy, pending)).toBe(eager.checksum);
    expect(hashedLazily).toBeLessThan(hashedEagerly); // the point: rewritten pages are hashed once per flush
  });

  it('a wrong page image is caught at the flush', () => {
    const eager = new DbHashState();
    const lazy = new DbHashState();
    const pending = new Map<number, Uint8Array>();
    const page = (b: number) => new Uint8Array(PAGE).fill(b);
    const tx = { truncateTo: Number.MAX_SAFE_INTEGER, commitSize: 2, pages: [{ pgno: 1, data: page(1) }, { pgno: 2, data: page(2) }] };
    const want = applyTransactionHashes(eager, tx);
    deferTransactionHashes(lazy, pending, { ...tx, pages: [tx.pages[0]!, { pgno: 2, data: page(3) }] });
    expect(flushPendingHashes(lazy, pending)).not.toBe(want);
  });
});
