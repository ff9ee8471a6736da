/**
 * The rolling database checksum (DESIGN §8, "as in LTX"): the XOR over every
 * page of `pageHash(pgno, page)`. Changing a page XORs its old hash out and the
 * new one in, so the shipper keeps it per transaction without hashing the
 * whole file; restore hashes the file it wrote once, at the end
 * (file-checksum.ts). LTX uses CRC64 of (pgno, page); Node has no CRC64, and a
 * JavaScript CRC64 is slower than native SHA-256, so a page hash here is the
 * first 8 bytes of SHA-256(u32be(pgno) ‖ page) — the page number inside the
 * hash, so moving content between pages changes the sum.
 */
import { pageHash } from './page-hash.js';

export { pageHash };

/** 64-bit database checksum; 0n for an empty database. */
export type DbChecksum = bigint;

/**
 * Page hashes of one database image and their XOR, kept up to date page by
 * page. Memory: 8 bytes per page (a 1 GiB database of 4 KiB pages: 2 MiB).
 */
export class DbHashState {
  #hashes: BigUint64Array;
  #present: Uint8Array;
  #pageCount = 0;
  #checksum = 0n;

  constructor(initialCapacity = 64) {
    this.#hashes = new BigUint64Array(initialCapacity);
    this.#present = new Uint8Array(initialCapacity);
  }

  /** Database size in pages. */
  get pageCount(): number { return this.#pageCount; }
  /** Current checksum. */
  get checksum(): DbChecksum { return this.#checksum; }

  #grow(n: number): void {
    if (n <= this.#hashes.length) return;
    const cap = Math.max(n, this.#hashes.length * 2);
    const h = new BigUint64Array(cap);
    h.set(this.#hashes);
    const p = new Uint8Array(cap);
    p.set(this.#present);
    this.#hashes = h;
    this.#present = p;
  }

  /** Set page `pgno` (1-based) to `page`, growing the database if it lies past the end. */
  setPage(pgno: number, page: Uint8Array): void {
    this.setPageHash(pgno, pageHash(pgno, page));
  }

  /** Like {@link setPage} with a hash already computed. */
  setPageHash(pgno: number, h: bigint): void {
    this.#grow(pgno);
    const i = pgno - 1;
    if (this.#present[i]) this.#checksum ^= this.#hashes[i]!;
    this.#hashes[i] = h;
    this.#present[i] = 1;
    this.#checksum ^= h;
    if (pgno > this.#pageCount) this.#pageCount = pgno;
  }

  /** Set the database size: pages past `pages` are dropped; growing only moves the end. */
  resize(pages: number): void {
    for (let i = pages; i < this.#pageCount; i++) {
      if (this.#present[i]) {
        this.#checksum ^= this.#hashes[i]!;
        this.#present[i] = 0;
        this.#hashes[i] = 0n;
      }
    }
    this.#grow(pages);
    this.#pageCount = pages;
  }

  /** Number of pages below the size that were never set (a sound image has none). */
  missingPages(): number {
    let n = 0;
    for (let i = 0; i < this.#pageCount; i++) if (!this.#present[i]) n++;
    return n;
  }

  /** Independent copy. */
  clone(): DbHashState {
    const c = new DbHashState(Math.max(1, this.#hashes.length));
    c.#hashes.set(this.#hashes);
    c.#present.set(this.#present);
    c.#pageCount = this.#pageCount;
    c.#checksum = this.#checksum;
    return c;
  }
}

/** `0x` + 16 hex digits, for messages. */
export function formatChecksum(c: DbChecksum): string {
  return `0x${c.toString(16).padStart(16, '0')}`;
}

/**
 * Apply one transaction to a hash state in the order restore applies it to the
 * file: drop pages past `truncateTo`, write `pages`, set the size to
 * `commitSize`. Shipper and restore share it so their checksums agree.
 */
export function applyTransactionHashes(
  state: DbHashState,
  tx: { truncateTo: number; commitSize: number; pages: ReadonlyArray<{ pgno: number; data: Uint8Array }> },
): DbChecksum {
  state.resize(Math.min(tx.truncateTo, state.pageCount));
  for (const p of tx.pages) state.setPage(p.pgno, p.data);
  state.resize(tx.commitSize);
  return state.checksum;
}
