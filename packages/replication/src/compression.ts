/**
 * Page-data compression of segments and snapshots. Brotli at quality 1 was
 * measured against deflate (raw) on SQLite pages of a typical table + index
 * (docs/replication-format.md): 180 MB/s at ratio 2.9 versus 94 MB/s at 2.5 for
 * deflate level 1. Both are in node:zlib; the flag in each object says which.
 */
import { promisify } from 'node:util';
import { brotliCompress, brotliCompressSync, brotliDecompress, brotliDecompressSync, constants, deflateRaw, deflateRawSync, inflateRaw, inflateRawSync } from 'node:zlib';
import { backupInvalid } from './binary.ts';

/** Codec ids stored in the `flags` field of segments and snapshots. */
export const Compression = { none: 0, brotli: 1, deflateRaw: 2 } as const;
/** A codec id. */
export type CompressionId = (typeof Compression)[keyof typeof Compression];

/** Compress with codec `id`. */
export function compress(id: CompressionId, data: Uint8Array): Uint8Array {
  switch (id) {
    case Compression.none: return data;
    case Compression.brotli: return brotliCompressSync(data, { params: brotliParams(data.byteLength) });
    case Compression.deflateRaw: return deflateRawSync(data, { level: 1 });
  }
}

/** Brotli quality 1, the encoder told the input's size. */
function brotliParams(size: number): Record<number, number> {
  return { [constants.BROTLI_PARAM_QUALITY]: 1, [constants.BROTLI_PARAM_SIZE_HINT]: size };
}

/** Inputs below this many bytes are compressed in place by {@link compressAsync}; per thread. */
let inlineBelow = 0;

/**
 * For a thread of its own (the shipper thread): {@link compressAsync}
 * compresses inputs smaller than `bytes` in place instead of on the libuv
 * pool. On the pool, brotli costs 1.4–2.9× the CPU (the encoder's memory
 * is allocated and faulted in afresh on the pool's threads each time):
 * `loadtest/replication-format-bench.ts`, "compress" lines (SQLite pages,
 * 2026-12-07: 0.1 MB 0.72–0.80 ms on the pool against 0.27–0.37 ms in
 * place, 0.4 MB 1.9–2.0 against 1.3–1.5 ms, 1.6 MB 7.1–7.2 against 5.1 ms;
 * an earlier "about the same from ~1.5 MB" measured the pool twice, its 1.6
 * MB input being over the in-place limit). Blocking that thread for the
 * milliseconds this takes costs other tenants' captures less than the extra
 * CPU costs the node. Module state: it applies to the calling thread only.
 * Default 0: always the pool (right for the main thread).
 */
export function compressInlineBelow(bytes: number): void {
  inlineBelow = Math.max(0, bytes);
}

/**
 * Whether {@link compressAsync} compresses `bytes` with codec `id` in place,
 * synchronously, into a buffer of its own: then the input may be reused as
 * soon as `compressAsync` has returned its promise (segment.ts gathers page
 * data in a reused buffer then). Never for `none`, whose output is its input.
 */
export function compressesInPlace(id: CompressionId, bytes: number): boolean {
  return id !== Compression.none && bytes < inlineBelow;
}

const brotliCompressAsync = promisify(brotliCompress);
const deflateRawAsync = promisify(deflateRaw);

/**
 * {@link compress} on the libuv thread pool (off the event loop), or in place
 * below {@link compressInlineBelow}'s size on this thread. The output
 * buffer is sized for the whole result (compressed pages are smaller than
 * their input; up to 8 MiB): with zlib's 16 KiB default every output chunk
 * costs a round trip to the main thread, measured as the largest single cost
 * of async replication under write load.
 */
export async function compressAsync(id: CompressionId, data: Uint8Array): Promise<Uint8Array> {
  if (data.byteLength < inlineBelow) return compress(id, data);
  const chunkSize = Math.min(Math.max(data.byteLength + 1024, 64 << 10), 8 << 20);
  switch (id) {
    case Compression.none: return data;
    case Compression.brotli: return brotliCompressAsync(data, { chunkSize, params: brotliParams(data.byteLength) });
    case Compression.deflateRaw: return deflateRawAsync(data, { level: 1, chunkSize });
  }
}

/** Decompress; the result must be exactly `expectedLength` bytes, else BACKUP_INVALID. */
export function decompress(id: number, data: Uint8Array, expectedLength: number, what: string): Uint8Array {
  let out: Uint8Array;
  try {
    switch (id) {
      case Compression.none: out = data; break;
      // maxOutputLength stops a corrupt stream from inflating without bound.
      case Compression.brotli: out = brotliDecompressSync(data, { maxOutputLength: Math.max(1, expectedLength) }); break;
      case Compression.deflateRaw: out = inflateRawSync(data, { maxOutputLength: Math.max(1, expectedLength) }); break;
      default: throw backupInvalid(`${what}: unknown compression ${id}.`);
    }
  } catch (err) {
    if ((err as { code?: unknown }).code === 'BACKUP_INVALID') throw err;
    throw backupInvalid(`${what}: page data does not decompress.`, {}, err);
  }
  if (out.byteLength !== expectedLength) throw backupInvalid(`${what}: page data has ${out.byteLength} bytes, expected ${expectedLength}.`);
  return out;
}

const brotliDecompressAsync = promisify(brotliDecompress);
const inflateRawAsync = promisify(inflateRaw);

/**
 * Largest output buffer {@link decompressAsync} allocates up front. The
 * expected length comes from an object whose trailer hash has been checked;
 * the cap bounds what a wrong one could ask for at once.
 */
const DECOMPRESS_CHUNK_MAX = 1 << 30;

/**
 * {@link decompress} on the libuv thread pool: restore inflates the next
 * objects while the main thread applies the current one.
 */
export async function decompressAsync(id: number, data: Uint8Array, expectedLength: number, what: string): Promise<Uint8Array> {
  // The whole output in one buffer, with room to spare so the end of the stream needs no second one: the 16 KiB
  // default costs a main-thread round trip per chunk (measured: 8× the main thread's time of this), and several
  // chunks are copied into one more buffer at the end (at the former 8 MiB cap, a fifth of a 100 MB restore's thread in a profile).
  // One buffer of the output's size is also the least memory the result needs. Above DECOMPRESS_CHUNK_MAX, chunks.
  const opts = { maxOutputLength: Math.max(1, expectedLength), chunkSize: Math.min(expectedLength + 64, DECOMPRESS_CHUNK_MAX) };
  let out: Uint8Array;
  try {
    switch (id) {
      case Compression.none: out = data; break;
      case Compression.brotli: out = await brotliDecompressAsync(data, opts); break;
      case Compression.deflateRaw: out = await inflateRawAsync(data, opts); break;
      default: throw backupInvalid(`${what}: unknown compression ${id}.`);
    }
  } catch (err) {
    if ((err as { code?: unknown }).code === 'BACKUP_INVALID') throw err;
    throw backupInvalid(`${what}: page data does not decompress.`, {}, err);
  }
  if (out.byteLength !== expectedLength) throw backupInvalid(`${what}: page data has ${out.byteLength} bytes, expected ${expectedLength}.`);
  return out;
}

/** True for a codec id this build can read. */
export function isKnownCompression(id: number): id is CompressionId {
  return id === Compression.none || id === Compression.brotli || id === Compression.deflateRaw;
}
