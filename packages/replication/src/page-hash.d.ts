/** Types of page-hash.js (plain JavaScript so that a worker thread loads it without tsx). */

/** SHA-256(u32be(pgno) ‖ page); a page hash is its first 8 bytes. */
export function pageDigest(pgno: number, page: Uint8Array): Buffer;

/** First 8 bytes of SHA-256(u32be(pgno) ‖ page) as an unsigned 64-bit value. */
export function pageHash(pgno: number, page: Uint8Array): bigint;

/** The database checksum of pages 1..pageCount of the file at `path` (XOR of their page hashes); throws when the file is shorter. */
export function fileChecksumSync(path: string, pageSize: number, pageCount: number): bigint;
