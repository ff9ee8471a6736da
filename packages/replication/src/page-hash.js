/**
 * Page hashes of the rolling database checksum (docs/replication-format.md,
 * "Rolling database checksum"), and the checksum of a whole file. Plain
 * JavaScript, not TypeScript, so that a worker thread loads it as is (without
 * tsx: a tsx-registered worker takes ~200 ms to start, a plain one ~30 ms):
 * file-checksum-worker.js hashes a restored file there while the restoring
 * thread runs `PRAGMA integrity_check`. Types: page-hash.d.ts.
 *
 * Two page hashes, each named by the id every object records:
 * - 1, XXH64(page, seed = pgno): what this build writes. Native (@node-rs/xxhash).
 * - 0, the first 8 bytes of SHA-256(u32be(pgno) ‖ page): what segment formats
 *   1–2 and snapshot format 1 imply; generations begun with it keep it.
 * The shipper hashes every page image of every transaction; per 4 KiB page
 * XXH64 takes ~0.26× the time of SHA-256 (1.3 against 4.9 µs here, the
 * "page hash" line of loadtest/replication-format-bench.ts).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { hash } from 'node:crypto';
import { xxh64 } from '@node-rs/xxhash';

/** Page hash ids as objects store them. */
export const PageHash = Object.freeze({ sha256: 0, xxh64: 1 });

/** The page hash new generations use. */
export const DEFAULT_PAGE_HASH = PageHash.xxh64;

const NAMES = ['sha256', 'xxh64'];

/**
 * @param {number} id
 * @returns {boolean}
 */
export function isKnownPageHash(id) {
  return id === PageHash.sha256 || id === PageHash.xxh64;
}

/**
 * A page hash's name for messages ("xxh64"; "page hash 7" for an unknown id).
 * @param {number} id
 * @returns {string}
 */
export function pageHashName(id) {
  return NAMES[id] ?? `page hash ${id}`;
}

/** @type {Map<number, Buffer>} one `u32be(pgno) ‖ page` buffer per page size, reused */
const scratchByPageSize = new Map();

/** XXH64 answers a BigInt: stored here and read back as two 32-bit halves, no BigInt arithmetic. */
const wide = new BigUint64Array(1);
const halves = new Uint32Array(wide.buffer);
const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const HI = littleEndian ? 1 : 0;
const LO = littleEndian ? 0 : 1;

/** Seeds (BigInt page numbers) of the first pages, made once. */
const SEED_CACHE = 1 << 16;
/** @type {bigint[]} */
const seeds = [];

/**
 * @param {number} pgno
 * @returns {bigint}
 */
function seed(pgno) {
  if (pgno >= SEED_CACHE) return BigInt(pgno);
  let s = seeds[pgno];
  if (s === undefined) s = seeds[pgno] = BigInt(pgno);
  return s;
}

/**
 * Page `pgno`'s hash under page hash `id`, as two unsigned 32-bit halves in
 * `out` (high half at 0, low at 1): the form the rolling checksum keeps, so
 * hashing a page allocates no BigInt of its own.
 * @param {number} id
 * @param {number} pgno
 * @param {Uint8Array} page
 * @param {Uint32Array} out
 */
export function pageHashHalves(id, pgno, page, out) {
  if (id === PageHash.xxh64) {
    wide[0] = xxh64(page, seed(pgno));
    out[0] = halves[HI];
    out[1] = halves[LO];
    return;
  }
  if (id !== PageHash.sha256) throw new RangeError(`unknown page hash ${id}`);
  let scratch = scratchByPageSize.get(page.byteLength);
  if (!scratch) {
    scratch = Buffer.alloc(4 + page.byteLength);
    scratchByPageSize.set(page.byteLength, scratch);
  }
  scratch.writeUInt32BE(pgno, 0);
  scratch.set(page, 4);
  const d = hash('sha256', scratch, 'buffer');
  out[0] = d.readUInt32BE(0);
  out[1] = d.readUInt32BE(4);
}

const one = new Uint32Array(2);

/**
 * Page `pgno`'s hash under page hash `id` (default {@link DEFAULT_PAGE_HASH}) as an unsigned 64-bit value.
 * @param {number} pgno
 * @param {Uint8Array} page
 * @param {number} [id]
 * @returns {bigint}
 */
export function pageHash(pgno, page, id = DEFAULT_PAGE_HASH) {
  pageHashHalves(id, pgno, page, one);
  return (BigInt(one[0]) << 32n) | BigInt(one[1]);
}

/** Pages read per `read` call. */
const READ_PAGES = 256;

/**
 * The database checksum of pages 1..pageCount of the file at `path` under
 * page hash `id`: the XOR of their page hashes. Throws when the file is
 * shorter than that.
 * @param {string} path
 * @param {number} pageSize
 * @param {number} pageCount
 * @param {number} id
 * @returns {bigint}
 */
export function fileChecksumSync(path, pageSize, pageCount, id) {
  if (!isKnownPageHash(id)) throw new RangeError(`unknown page hash ${id}`);
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(pageSize * Math.min(READ_PAGES, Math.max(1, pageCount)));
    const h = new Uint32Array(2);
    // The XOR in two 32-bit halves: no BigInt per page.
    let hi = 0;
    let lo = 0;
    for (let first = 1; first <= pageCount; first += READ_PAGES) {
      const n = Math.min(READ_PAGES, pageCount - first + 1);
      const want = n * pageSize;
      let got = 0;
      while (got < want) {
        const r = readSync(fd, buf, got, want - got, (first - 1) * pageSize + got);
        if (r === 0) throw new Error(`${path} ends before page ${first + Math.floor(got / pageSize)} of ${pageCount}`);
        got += r;
      }
      for (let i = 0; i < n; i++) {
        pageHashHalves(id, first + i, buf.subarray(i * pageSize, (i + 1) * pageSize), h);
        hi ^= h[0];
        lo ^= h[1];
      }
    }
    return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  } finally {
    closeSync(fd);
  }
}
