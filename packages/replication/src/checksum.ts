/**
 * The rolling database checksum (DESIGN §8, "as in LTX"): the XOR over every
 * page of a 64-bit hash of (pgno, page). Changing a page XORs its old hash out
 * and the new one in, so the shipper keeps it per transaction without hashing
 * the whole file; restore hashes the file it wrote once, at the end
 * (file-checksum.ts). The page number is inside the hash, so moving content
 * between pages changes the sum. Which hash is a generation's choice, recorded
 * in each of its objects (page-hash.js): XXH64 seeded with the page number for
 * new generations, the first 8 bytes of SHA-256(u32be(pgno) ‖ page) for
 * generations begun by builds before it. LTX uses CRC64; Node has none natively.
 */
import { DEFAULT_PAGE_HASH, pageHash, pageHashHalves, pageHashName, type PageHashId } from './page-hash.js';

export { DEFAULT_PAGE_HASH, isKnownPageHash, PageHash, pageHashName, type PageHashId } from './page-hash.js';
export { pageHash };

/** One page hash's halves, reused by every state (single-threaded). */
const scratch = new Uint32Array(2);

/** 64-bit database checksum; 0n for an empty database. */
export type DbChecksum = bigint;

/**
 * Page hashes of one database image and their XOR, kept up to date page by
 * page. Memory: 8 bytes per page (a 1 GiB database of 4 KiB pages: 2 MiB).
 * Hashes are held as two 32-bit halves, so keeping the sum allocates no
 * BigInt per page (the shipper updates it for every page image it ships).
 */
export class DbHashState {
  /** Page i's hash: high half at 2i, low half at 2i + 1. */
  #hashes: Uint32Array;
  #present: Uint8Array;
  #pageCount = 0;
  #hi = 0;
  #lo = 0;
  /** The page hash this state sums. */
  readonly pageHash: PageHashId;

  constructor(initialCapacity = 64, pageHash: PageHashId = DEFAULT_PAGE_HASH) {
    this.#hashes = new Uint32Array(2 * initialCapacity);
    this.#present = new Uint8Array(initialCapacity);
    this.pageHash = pageHash;
  }

  /** Database size in pages. */
  get pageCount(): number { return this.#pageCount; }
  /** Current checksum. */
  get checksum(): DbChecksum { return (BigInt(this.#hi >>> 0) << 32n) | BigInt(this.#lo >>> 0); }

  #grow(n: number): void {
    if (n <= this.#present.length) return;
    const cap = Math.max(n, this.#present.length * 2);
    const h = new Uint32Array(2 * cap);
    h.set(this.#hashes);
    const p = new Uint8Array(cap);
    p.set(this.#present);
    this.#hashes = h;
    this.#present = p;
  }

  /** Set page `pgno` (1-based) to `page`, growing the database if it lies past the end. */
  setPage(pgno: number, page: Uint8Array): void {
    pageHashHalves(this.pageHash, pgno, page, scratch);
    this.#set(pgno, scratch[0]!, scratch[1]!);
  }

  #set(pgno: number, hi: number, lo: number): void {
    this.#grow(pgno);
    const i = pgno - 1;
    if (this.#present[i]) this.#drop(i);
    this.#hashes[2 * i] = hi;
    this.#hashes[2 * i + 1] = lo;
    this.#present[i] = 1;
    this.#hi ^= hi;
    this.#lo ^= lo;
    if (pgno > this.#pageCount) this.#pageCount = pgno;
  }

  /** XOR page index `i`'s hash out of the sum. */
  #drop(i: number): void {
    this.#hi ^= this.#hashes[2 * i]!;
    this.#lo ^= this.#hashes[2 * i + 1]!;
  }

  /** Set the database size: pages past `pages` are dropped; growing only moves the end. */
  resize(pages: number): void {
    for (let i = pages; i < this.#pageCount; i++) {
      if (this.#present[i]) {
        this.#drop(i);
        this.#present[i] = 0;
        this.#hashes[2 * i] = 0;
        this.#hashes[2 * i + 1] = 0;
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
}

/** `0x` + 16 hex digits and the page hash it sums, for messages ("0x… (xxh64)"). */
export function describeChecksum(c: DbChecksum, id: PageHashId): string {
  return `${formatChecksum(c)} (${pageHashName(id)})`;
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
