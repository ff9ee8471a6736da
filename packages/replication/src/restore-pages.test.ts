import { describe, expect, it } from 'vitest';
import { seededRandom } from '@domicile/testkit/random';
import { DbHashState, applyTransactionHashes, pageHash } from './checksum.ts';
import { RestoredPages } from './restore-pages.ts';

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

/** The file restore writes, in memory: `take()`n images written, then truncated to the size (as restore does). */
class FileModel {
  readonly pages = new Map<number, Uint8Array>();
  write(restored: RestoredPages): number {
    const images = restored.take();
    for (let i = 1; i < images.length; i++) expect(images[i]!.pgno).toBeGreaterThan(images[i - 1]!.pgno);
    for (const p of images) this.pages.set(p.pgno, p.data);
    for (const pgno of this.pages.keys()) if (pgno > restored.pageCount) this.pages.delete(pgno);
    return images.length;
  }
  /**
   * XOR of the page hashes of the written images of `present` pages. A page the
   * state lacks (truncated, then grown past without a write) can still hold an
   * old image in the file: that is what missingPages reports, and restore
   * refuses a result with one.
   */
  checksumOf(present: Iterable<number>): bigint {
    let sum = 0n;
    for (const pgno of present) {
      const data = this.pages.get(pgno);
      if (!data) throw new Error(`page ${pgno} was never written`);
      sum ^= pageHash(pgno, data);
    }
    return sum;
  }
}

/** Pages a state has after each transaction, applied one by one (what DbHashState counts). */
function applyPresence(present: Set<number>, tx: { truncateTo: number; commitSize: number; pages: ReadonlyArray<{ pgno: number }> }): void {
  for (const p of present) if (p > tx.truncateTo) present.delete(p);
  for (const p of tx.pages) present.add(p.pgno);
  for (const p of present) if (p > tx.commitSize) present.delete(p);
}

describe('RestoredPages', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('writes the state the transactions applied one by one give, at every take (seed %i)', (seed) => {
    const r = seededRandom(seed);
    const eager = new DbHashState();
    const restored = new RestoredPages();
    const file = new FileModel();
    const present = new Set<number>();
    let written = 0;
    let applied = 0;
    for (let i = 0; i < 400; i++) {
      const tx = randomTx(r, eager.pageCount);
      const want = applyTransactionHashes(eager, tx);
      applyPresence(present, tx);
      applied += tx.pages.length;
      restored.add(tx);
      expect(restored.pageCount, `tx ${i}`).toBe(eager.pageCount);
      if (r() < 0.15) {
        written += file.write(restored);
        expect(file.checksumOf(present), `take after tx ${i}`).toBe(want);
        expect(restored.missingPages()).toBe(eager.missingPages());
      }
    }
    written += file.write(restored);
    expect(file.checksumOf(present)).toBe(eager.checksum);
    expect(restored.missingPages()).toBe(eager.missingPages());
    expect(written).toBeLessThan(applied); // the point: a rewritten page is written once per take
  });

  it('starts from a whole snapshot and counts pages no one wrote', () => {
    const restored = new RestoredPages(3);
    expect(restored.pageCount).toBe(3);
    expect(restored.missingPages()).toBe(0);
    // Grows to 6 pages but writes only page 5: pages 4 and 6 were never written.
    restored.add({ truncateTo: Number.MAX_SAFE_INTEGER, commitSize: 6, pages: [{ pgno: 5, data: new Uint8Array(PAGE) }] });
    expect(restored.take().map((p) => p.pgno)).toEqual([5]);
    expect(restored.missingPages()).toBe(2);
    // Truncated back to 3, then a page past the commit size is dropped, not written.
    restored.add({ truncateTo: 3, commitSize: 3, pages: [{ pgno: 4, data: new Uint8Array(PAGE) }] });
    expect(restored.take()).toEqual([]);
    expect(restored.missingPages()).toBe(0);
  });
});
