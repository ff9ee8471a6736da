/**
 * The page images a restore writes, deferred within a segment (docs/restore.md):
 * sizes are followed transaction by transaction, but a page is written once
 * per segment, in its last image. No hashing here: restore hashes the finished
 * file once and compares it with the checksum the backup records at the
 * restored point (file-checksum.ts).
 */
import type { PageImage } from './segment.ts';

/** Size and written pages of the file a restore builds, and the images not written yet. */
export class RestoredPages {
  #present: Uint8Array;
  #pageCount = 0;
  readonly #pending = new Map<number, Uint8Array>();

  /** `whole`: pages 1..whole are already written (the snapshot). */
  constructor(whole = 0) {
    this.#present = new Uint8Array(Math.max(64, whole));
    this.#present.fill(1, 0, whole);
    this.#pageCount = whole;
  }

  get pageCount(): number { return this.#pageCount; }

  /**
   * One transaction, as SQLite applies it: drop pages past `truncateTo`, take
   * `pages` as the newest images, set the size to `commitSize` (pages past it
   * are dropped, pending ones included).
   */
  add(tx: { truncateTo: number; commitSize: number; pages: ReadonlyArray<PageImage> }): void {
    const truncateTo = Math.min(tx.truncateTo, this.#pageCount);
    if (truncateTo < this.#pageCount) this.#resize(truncateTo);
    let highest = 0;
    for (const p of tx.pages) {
      this.#pending.set(p.pgno, p.data);
      if (p.pgno > highest) highest = p.pgno;
    }
    this.#resize(tx.commitSize);
    if (highest > tx.commitSize) for (const pgno of this.#pending.keys()) if (pgno > tx.commitSize) this.#pending.delete(pgno);
  }

  /** The images added since the last take, ascending by page number; they count as written from now on. */
  take(): PageImage[] {
    const out: PageImage[] = [];
    for (const [pgno, data] of this.#pending) {
      out.push({ pgno, data });
      this.#present[pgno - 1] = 1;
    }
    this.#pending.clear();
    return out.sort((a, b) => a.pgno - b.pgno);
  }

  /** Pages within the size that no snapshot or transaction wrote (taken images count). */
  missingPages(): number {
    let n = 0;
    for (let i = 0; i < this.#pageCount; i++) if (!this.#present[i]) n++;
    return n;
  }

  #resize(pages: number): void {
    if (pages < this.#pageCount) {
      this.#present.fill(0, pages, this.#pageCount);
      for (const pgno of this.#pending.keys()) if (pgno > pages) this.#pending.delete(pgno);
    } else if (pages > this.#present.length) {
      const grown = new Uint8Array(Math.max(pages, this.#present.length * 2));
      grown.set(this.#present);
      this.#present = grown;
    }
    this.#pageCount = pages;
  }
}
