/**
 * The page hash of the rolling database checksum (docs/replication-format.md,
 * "Rolling database checksum"), and the checksum of a whole file. Plain
 * JavaScript, not TypeScript, so that a worker thread loads it as is (without
 * tsx: a tsx-registered worker takes ~200 ms to start, a plain one ~30 ms):
 * file-checksum-worker.js hashes a restored file there while the restoring
 * thread runs `PRAGMA integrity_check`. Types: page-hash.d.ts.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { hash } from 'node:crypto';

/** @type {Map<number, Buffer>} one `u32be(pgno) ‖ page` buffer per page size, reused */
const scratchByPageSize = new Map();

/**
 * SHA-256(u32be(pgno) ‖ page): a page hash is its first 8 bytes.
 * @param {number} pgno
 * @param {Uint8Array} page
 * @returns {Buffer}
 */
export function pageDigest(pgno, page) {
  let scratch = scratchByPageSize.get(page.byteLength);
  if (!scratch) {
    scratch = Buffer.alloc(4 + page.byteLength);
    scratchByPageSize.set(page.byteLength, scratch);
  }
  scratch.writeUInt32BE(pgno, 0);
  scratch.set(page, 4);
  return hash('sha256', scratch, 'buffer');
}

/**
 * First 8 bytes of SHA-256(u32be(pgno) ‖ page) as an unsigned 64-bit value.
 * @param {number} pgno
 * @param {Uint8Array} page
 * @returns {bigint}
 */
export function pageHash(pgno, page) {
  return pageDigest(pgno, page).readBigUInt64BE(0);
}

/** Pages read per `read` call. */
const READ_PAGES = 256;

/**
 * The database checksum of pages 1..pageCount of the file at `path`: the XOR
 * of their page hashes. Throws when the file is shorter than that.
 * @param {string} path
 * @param {number} pageSize
 * @param {number} pageCount
 * @returns {bigint}
 */
export function fileChecksumSync(path, pageSize, pageCount) {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(pageSize * Math.min(READ_PAGES, Math.max(1, pageCount)));
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
        const d = pageDigest(first + i, buf.subarray(i * pageSize, (i + 1) * pageSize));
        hi ^= d.readUInt32BE(0);
        lo ^= d.readUInt32BE(4);
      }
    }
    return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  } finally {
    closeSync(fd);
  }
}
