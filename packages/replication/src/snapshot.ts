/**
 * Snapshots: a full database image at one txid, written and read as a stream
 * of compressed chunks so a large database never sits in memory whole. The
 * database checksum is in the header (computed before streaming, by the
 * shipper's hash pass or by {@link createSnapshot} itself) and the writer
 * re-checks it while streaming: a file that changed under the writer fails the
 * stream, so a wrong snapshot is never stored. Layout: docs/replication-format.md.
 *
 * Format 2 (written since 2026-12-07) adds the page hash its checksum sums
 * (page-hash.js); format 1, still read, implies SHA-256.
 */
import { createHash, hash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { brotliCompress, constants, deflateRaw } from 'node:zlib';
import { DomicileError, isDomicileError } from '@domicile/errors';
import { backupInvalid, ByteReader, ByteWriter } from './binary.ts';
import { DbHashState, DEFAULT_PAGE_HASH, describeChecksum, isKnownPageHash, PageHash, pageHashName, type DbChecksum, type PageHashId } from './checksum.ts';
import { Compression, decompressAsync, isKnownCompression, type CompressionId } from './compression.ts';
import { DbFile } from './db-file.ts';
import { readDomicileMeta } from './domicile-meta.ts';
import type { ObjectIdentity } from './segment.ts';

/** Magic of a snapshot object. */
export const SNAPSHOT_MAGIC = 'DSNP';
/** Format major version this build writes; it reads this one and {@link SNAPSHOT_MAJOR_V1}. */
export const SNAPSHOT_MAJOR = 2;
/** The first format: no page hash field (SHA-256 page hashes). */
export const SNAPSHOT_MAJOR_V1 = 1;
/** Format minor version this build writes. */
export const SNAPSHOT_MINOR = 0;
/** Pages per compressed chunk (1 MiB of 4 KiB pages). */
export const DEFAULT_CHUNK_PAGES = 256;

const brotliCompressAsync = promisify(brotliCompress);
const deflateRawAsync = promisify(deflateRaw);

/** Header fields of a snapshot. */
export interface SnapshotHeader extends ObjectIdentity {
  major: number;
  minor: number;
  txid: number;
  /** Time the snapshot's state was current (ms since the epoch). */
  time: number;
  pageSize: number;
  pageCount: number;
  checksum: DbChecksum;
  /** The page hash `checksum` sums: the generation's (format 1: SHA-256). */
  pageHash: PageHashId;
  compression: CompressionId;
  chunkPages: number;
}

/** Options of {@link createSnapshot}. */
export type CreateSnapshotOptions = ObjectIdentity & {
  /** A database file that does not change while the stream is read (checkpointed; checkpoints held). */
  dbPath: string;
  time?: number;
  compression?: CompressionId;
  chunkPages?: number;
} & (
  /** The checksum of the file if already known (the shipper's), and the page hash it sums. */
  | { checksum: DbChecksum; pageHash: PageHashId }
  /** Computed by a first pass, with `pageHash` (default {@link DEFAULT_PAGE_HASH}). */
  | { checksum?: undefined; pageHash?: PageHashId }
);

/** A snapshot ready to stream. */
export interface SnapshotSource {
  header: SnapshotHeader;
  /** The encoded object; errors if the file changed under it. Read it once. */
  stream: Readable;
  /** Resolves with the encoded size when the stream ended; rejects with the stream's error. */
  done: Promise<{ bytes: number }>;
}

/**
 * Prepare the snapshot of a database file: the txid comes from its
 * `_domicile_meta` row, which must name `tenant` and `incarnation`.
 */
export function createSnapshot(opts: CreateSnapshotOptions): SnapshotSource {
  const fd = openSync(opts.dbPath, 'r');
  let header: SnapshotHeader;
  try {
    const file = new DbFile(fd);
    const pageCount = file.pageCount();
    const meta = readDomicileMeta((p) => (p <= pageCount ? file.page(p) : undefined));
    if (!meta) throw new DomicileError('INTERNAL', 'snapshot source has no _domicile_meta row');
    if (meta.tenant !== opts.tenant || meta.incarnation !== opts.incarnation) throw new DomicileError('INTERNAL', 'snapshot source belongs to another tenant or incarnation');
    const pageHash = opts.pageHash ?? DEFAULT_PAGE_HASH;
    let checksum = opts.checksum;
    if (checksum === undefined) {
      const st = new DbHashState(pageCount, pageHash);
      for (let p = 1; p <= pageCount; p++) st.setPage(p, file.page(p)!);
      checksum = st.checksum;
    }
    header = {
      tenant: opts.tenant, incarnation: opts.incarnation, generation: opts.generation, epoch: opts.epoch, major: SNAPSHOT_MAJOR, minor: SNAPSHOT_MINOR,
      txid: meta.txid, time: opts.time ?? Date.now(), pageSize: file.pageSize, pageCount, checksum, pageHash,
      compression: opts.compression ?? Compression.brotli, chunkPages: opts.chunkPages ?? DEFAULT_CHUNK_PAGES,
    };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  let settle!: { resolve: (v: { bytes: number }) => void; reject: (e: unknown) => void };
  const done = new Promise<{ bytes: number }>((resolve, reject) => { settle = { resolve, reject }; });
  // Callers that only await `done` after the upload must not see an unhandled rejection first.
  done.catch(() => {});
  const stream = Readable.from(encodeChunks(fd, header, settle), { objectMode: false });
  // A consumer that gives up early (failed upload) destroys the stream: `done` must settle then too.
  stream.once('close', () => settle.reject(new DomicileError('INTERNAL', 'snapshot stream closed before its end')));
  return { header, stream, done };
}

function encodeHeader(h: SnapshotHeader): Buffer {
  const w = new ByteWriter();
  w.bytes(Buffer.from(SNAPSHOT_MAGIC, 'latin1')).u16(SNAPSHOT_MAJOR).u16(SNAPSHOT_MINOR);
  const lenAt = w.length;
  w.u32(0).u32(h.compression).u32(h.pageSize).u32(h.pageCount).u32(h.chunkPages);
  w.u53(h.epoch).u53(h.txid).u53(h.time).u64(h.checksum).u32(h.pageHash);
  w.str(h.tenant).str(h.incarnation).str(h.generation);
  w.setU32(lenAt, w.length);
  return Buffer.from(w.view());
}

async function* encodeChunks(
  fd: number, h: SnapshotHeader, settle: { resolve: (v: { bytes: number }) => void; reject: (e: unknown) => void },
): AsyncGenerator<Buffer> {
  const sha = createHash('sha256');
  let bytes = 0;
  const emit = (b: Buffer): Buffer => { sha.update(b); bytes += b.byteLength; return b; };
  try {
    yield emit(encodeHeader(h));
    const file = new DbFile(fd, h.pageSize);
    const state = new DbHashState(h.pageCount, h.pageHash);
    for (let first = 1; first <= h.pageCount; first += h.chunkPages) {
      const n = Math.min(h.chunkPages, h.pageCount - first + 1);
      const raw = Buffer.allocUnsafe(n * h.pageSize);
      for (let i = 0; i < n; i++) {
        const page = file.page(first + i);
        if (!page) throw new DomicileError('INTERNAL', 'snapshot source shrank while being read');
        state.setPage(first + i, page);
        raw.set(page, i * h.pageSize);
      }
      const packed = await compressAsync(h.compression, raw);
      const len = Buffer.allocUnsafe(8);
      len.writeUInt32BE(n, 0);
      len.writeUInt32BE(packed.byteLength, 4);
      yield emit(len);
      yield emit(Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength));
    }
    if (state.checksum !== h.checksum || new DbFile(fd, h.pageSize).pageCount() !== h.pageCount) {
      throw new DomicileError('INTERNAL', `snapshot source changed while being read (checksum ${describeChecksum(state.checksum, h.pageHash)}, expected ${describeChecksum(h.checksum, h.pageHash)})`);
    }
    yield emit(Buffer.alloc(8));
    yield sha.digest();
    settle.resolve({ bytes: bytes + 32 });
  } catch (err) {
    settle.reject(err);
    throw err;
  } finally {
    closeSync(fd);
  }
}

async function compressAsync(id: CompressionId, data: Buffer): Promise<Uint8Array> {
  switch (id) {
    case Compression.none: return data;
    case Compression.brotli: return brotliCompressAsync(data, {
      params: { [constants.BROTLI_PARAM_QUALITY]: 1, [constants.BROTLI_PARAM_SIZE_HINT]: data.byteLength },
    });
    case Compression.deflateRaw: return deflateRawAsync(data, { level: 1 });
  }
}

/** Pulls exact byte counts from a stream, hashing everything it hands out. */
class StreamBytes {
  readonly #it: AsyncIterator<Buffer | string>;
  readonly #sha = createHash('sha256');
  #buf: Buffer = Buffer.alloc(0);
  #what: string;

  constructor(stream: Readable, what: string) {
    this.#it = stream[Symbol.asyncIterator]();
    this.#what = what;
  }

  async take(n: number, field: string, hashIt = true): Promise<Buffer> {
    while (this.#buf.length < n) {
      const r = await this.#it.next();
      if (r.done) throw backupInvalid(`${this.#what} is truncated (reading ${field}).`, { field });
      const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
      this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    }
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    if (hashIt) this.#sha.update(out);
    return out;
  }

  digest(): Buffer { return this.#sha.digest(); }

  /** True when nothing follows. */
  async atEnd(): Promise<boolean> {
    if (this.#buf.length > 0) return false;
    const r = await this.#it.next();
    if (r.done) return true;
    this.#buf = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    return this.#buf.length === 0 ? this.atEnd() : false;
  }

  async close(): Promise<void> { await this.#it.return?.(); }
}

/** Read and validate only the header of a snapshot stream (the rest is not read; the stream is destroyed). */
export async function readSnapshotHeader(stream: Readable, what = 'snapshot'): Promise<SnapshotHeader> {
  const r = new StreamBytes(stream, what);
  try {
    return await parseHeader(r, what);
  } finally {
    await r.close();
    stream.destroy();
  }
}

async function parseHeader(r: StreamBytes, what: string): Promise<SnapshotHeader> {
  const fixed = await r.take(12, 'header');
  if (fixed.subarray(0, 4).toString('latin1') !== SNAPSHOT_MAGIC) throw backupInvalid(`${what} is not a Domicile snapshot (bad magic).`);
  const major = fixed.readUInt16BE(4);
  const minor = fixed.readUInt16BE(6);
  if (major !== SNAPSHOT_MAJOR && major !== SNAPSHOT_MAJOR_V1) {
    throw backupInvalid(`${what} has snapshot format ${major}.${minor}; this build reads major versions ${SNAPSHOT_MAJOR_V1} and ${SNAPSHOT_MAJOR}.`, { formatMajor: major });
  }
  const headerLength = fixed.readUInt32BE(8);
  if (headerLength < 12 + (major === SNAPSHOT_MAJOR_V1 ? 48 : 52) + 3 || headerLength > 4096) throw backupInvalid(`${what}: invalid header length.`);
  const rest = await r.take(headerLength - 12, 'header');
  const hr = new ByteReader(rest, what);
  const compression = hr.u32('flags');
  const pageSize = hr.u32('page size');
  const pageCount = hr.u32('page count');
  const chunkPages = hr.u32('chunk pages');
  const epoch = hr.u53('epoch');
  const txid = hr.u53('txid');
  const time = hr.u53('time');
  const checksum = hr.u64('checksum');
  const pageHash = major === SNAPSHOT_MAJOR_V1 ? PageHash.sha256 : hr.u32('page hash');
  const tenant = hr.str('tenant');
  const incarnation = hr.str('incarnation');
  const generation = hr.str('generation');
  if (!isKnownCompression(compression)) throw backupInvalid(`${what}: unknown compression ${compression}.`);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) throw backupInvalid(`${what}: invalid page size.`);
  if (chunkPages < 1 || chunkPages > 65536) throw backupInvalid(`${what}: invalid chunk size.`);
  if (!isKnownPageHash(pageHash)) throw backupInvalid(`${what}: unknown ${pageHashName(pageHash)}.`);
  return { tenant, incarnation, generation, epoch, major, minor, txid, time, pageSize, pageCount, checksum, pageHash, compression, chunkPages };
}

/** Result of {@link readSnapshot}. */
export interface ReadSnapshotResult {
  header: SnapshotHeader;
}

/**
 * Read a snapshot stream to its end, handing each chunk of page images to
 * `onPages(firstPgno, pages)` in order (await it: backpressure). Validates
 * chunk sizes, the page count and the trailer SHA-256 (which covers every
 * byte); anything wrong is BACKUP_INVALID — callers discard what they wrote.
 * The pages are not hashed here: the header's database checksum is what the
 * caller compares its finished file with (restore: file-checksum.ts), once,
 * after any segments.
 */
export async function readSnapshot(
  stream: Readable,
  onPages: (firstPgno: number, pages: Uint8Array, header: SnapshotHeader) => void | Promise<void>,
  what = 'snapshot',
): Promise<ReadSnapshotResult> {
  const r = new StreamBytes(stream, what);
  try {
    const header = await parseHeader(r, what);
    let next = 1;
    for (;;) {
      const lens = await r.take(8, 'chunk length');
      const n = lens.readUInt32BE(0);
      const clen = lens.readUInt32BE(4);
      if (n === 0) {
        if (clen !== 0) throw backupInvalid(`${what}: bad end marker.`);
        break;
      }
      if (n > header.chunkPages || next + n - 1 > header.pageCount) throw backupInvalid(`${what}: chunk past the page count.`);
      if (clen > n * header.pageSize * 2 + 1024) throw backupInvalid(`${what}: chunk length out of range.`);
      const packed = await r.take(clen, 'chunk');
      const raw = await decompressAsync(header.compression, packed, n * header.pageSize, what);
      await onPages(next, raw, header);
      next += n;
    }
    if (next - 1 !== header.pageCount) throw backupInvalid(`${what}: ${next - 1} pages, header says ${header.pageCount}.`);
    const digest = r.digest();
    const trailer = await r.take(32, 'trailer', false);
    if (!trailer.equals(digest)) throw backupInvalid(`${what}: trailer checksum mismatch (corrupt or truncated object).`);
    if (!(await r.atEnd())) throw backupInvalid(`${what}: unexpected bytes after the trailer.`);
    return { header };
  } catch (err) {
    stream.destroy();
    if (isDomicileError(err)) throw err;
    throw backupInvalid(`${what} could not be read.`, {}, err);
  } finally {
    await r.close();
  }
}

/**
 * A format 2 snapshot's bytes rewritten as format 1 (builds before 2026-12-07
 * wrote it: no page hash field), re-sealed: for compatibility tests. Its
 * checksum must be a SHA-256 one.
 */
export function snapshotAsFormat1(bytes: Uint8Array): Buffer {
  const b = Buffer.from(bytes);
  if (b.readUInt16BE(4) !== SNAPSHOT_MAJOR || b.readUInt32BE(60) !== PageHash.sha256) throw new RangeError('a format 2 snapshot of SHA-256 page hashes is needed');
  const headerLength = b.readUInt32BE(8);
  const body = Buffer.concat([b.subarray(0, 60), b.subarray(64, b.byteLength - 32)]);
  body.writeUInt16BE(SNAPSHOT_MAJOR_V1, 4);
  body.writeUInt32BE(headerLength - 4, 8);
  return Buffer.concat([body, sha256(body)]);
}

/** SHA-256 of bytes (exported for tests and tools). */
export function sha256(b: Uint8Array): Buffer {
  return hash('sha256', b, 'buffer');
}
