/** Types of page-hash.js (plain JavaScript so that a worker thread loads it without tsx). */

/** Page hash ids as segments and snapshots record them. */
export declare const PageHash: Readonly<{
  /** First 8 bytes of SHA-256(u32be(pgno) ‖ page): segment formats 1–2, snapshot format 1. */
  sha256: 0;
  /** XXH64(page, seed = pgno): what this build writes. */
  xxh64: 1;
}>;

/** A page hash id. */
export type PageHashId = (typeof PageHash)[keyof typeof PageHash];

/** The page hash new generations use. */
export declare const DEFAULT_PAGE_HASH: PageHashId;

/** Whether `id` names a page hash this build computes. */
export function isKnownPageHash(id: number): id is PageHashId;

/** A page hash's name for messages ("xxh64"). */
export function pageHashName(id: number): string;

/** Page `pgno`'s hash under `id` as two unsigned 32-bit halves: `out[0]` high, `out[1]` low. */
export function pageHashHalves(id: PageHashId, pgno: number, page: Uint8Array, out: Uint32Array): void;

/** Page `pgno`'s hash under `id` (default {@link DEFAULT_PAGE_HASH}) as an unsigned 64-bit value. */
export function pageHash(pgno: number, page: Uint8Array, id?: PageHashId): bigint;

/** The database checksum of pages 1..pageCount of the file at `path` under `id` (XOR of their page hashes); throws when the file is shorter. */
export function fileChecksumSync(path: string, pageSize: number, pageCount: number, id: PageHashId): bigint;
