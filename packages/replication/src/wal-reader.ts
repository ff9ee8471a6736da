/**
 * Reader of SQLite's WAL file format (https://sqlite.org/fileformat2.html#walformat).
 * It validates exactly what SQLite validates when it recovers a WAL: the header
 * checksum, then frame by frame the salts and the cumulative checksum; the first
 * frame that fails ends the log. Only frames up to the last commit frame are
 * returned: frames after it belong to a transaction that has not committed (or
 * never will) and SQLite overwrites them.
 */
import { fstatSync, readSync } from 'node:fs';

/** Size of the WAL header. */
export const WAL_HEADER_SIZE = 32;
/** Size of a frame header (before each page image). */
export const WAL_FRAME_HEADER_SIZE = 24;
/** Header magic: checksums over little-endian words. */
export const WAL_MAGIC_LE = 0x377f0682;
/** Header magic: checksums over big-endian words. */
export const WAL_MAGIC_BE = 0x377f0683;
/** The only WAL format version SQLite has written. */
export const WAL_VERSION = 3007000;

/** The 32-byte WAL header. */
export interface WalHeader {
  /** True for magic 0x377f0683 (checksums over big-endian words). */
  bigEndianChecksums: boolean;
  version: number;
  pageSize: number;
  checkpointSeq: number;
  salt1: number;
  salt2: number;
  checksum1: number;
  checksum2: number;
}

/** One valid frame. */
export interface WalFrame {
  /** Page number (1-based). */
  pgno: number;
  /** Database size in pages after this commit; 0 for a frame that is not a commit. */
  commitSize: number;
  /** Page image (a view into the read buffer). */
  data: Uint8Array;
  /** File offset of the frame header. */
  offset: number;
  /** Cumulative checksum through this frame: a read can resume after it. */
  checksum1: number;
  checksum2: number;
}

/**
 * A place in one WAL: right after a commit frame (or right after the header).
 * Reading on from it needs the running checksum at that point, and the salts
 * say whether the file is still the same log.
 */
export interface WalPosition {
  salt1: number;
  salt2: number;
  pageSize: number;
  bigEndianChecksums: boolean;
  /** File offset of the next frame. */
  offset: number;
  /** Cumulative checksum of the frame before `offset` (the header's for offset 32). */
  checksum1: number;
  checksum2: number;
}

/** Why a WAL is no longer the log a position points into. */
export type WalRestartReason = 'salt-changed' | 'shrunk' | 'header-invalid' | 'format-changed';

/** Result of {@link readWal}. */
export type WalReadResult =
  | {
      kind: 'frames';
      header: WalHeader;
      /** Valid frames from the start position through the last commit frame (may be empty). */
      frames: WalFrame[];
      /** Number of commit frames in `frames`. */
      commits: number;
      /** Offset after the last valid frame, committed or not. */
      endOffset: number;
      /** Offset after the last commit frame (= the start when none). */
      lastCommitOffset: number;
      /** Position after the last commit frame: where the next read starts. */
      position: WalPosition;
    }
  /** No WAL, or a file too short or invalid to hold a header, read from the start: nothing committed. */
  | { kind: 'empty' }
  /** The log changed under a position (checkpoint reset, truncation, rewrite): a new generation starts unless the caller expected it. */
  | { kind: 'restart'; reason: WalRestartReason; header: WalHeader | null };

/** A WAL as bytes in memory, or an open file descriptor read with `readSync`. */
export type WalSource = Uint8Array | number;

/** Parse and check the header; `null` when SQLite would treat the log as empty. */
export function parseWalHeader(buf: Uint8Array): WalHeader | null {
  if (buf.byteLength < WAL_HEADER_SIZE) return null;
  const v = new DataView(buf.buffer, buf.byteOffset, WAL_HEADER_SIZE);
  const magic = v.getUint32(0);
  if (magic !== WAL_MAGIC_LE && magic !== WAL_MAGIC_BE) return null;
  const bigEndianChecksums = magic === WAL_MAGIC_BE;
  const header: WalHeader = {
    bigEndianChecksums,
    version: v.getUint32(4),
    pageSize: v.getUint32(8),
    checkpointSeq: v.getUint32(12),
    salt1: v.getUint32(16),
    salt2: v.getUint32(20),
    checksum1: v.getUint32(24),
    checksum2: v.getUint32(28),
  };
  if (header.version !== WAL_VERSION) return null;
  const ps = header.pageSize;
  if (ps < 512 || ps > 65536 || (ps & (ps - 1)) !== 0) return null;
  const [c1, c2] = walChecksum(buf.subarray(0, 24), bigEndianChecksums, 0, 0);
  if (c1 !== header.checksum1 || c2 !== header.checksum2) return null;
  return header;
}

/**
 * SQLite's `walChecksumBytes`: over pairs of 32-bit words x0, x1 (in the byte
 * order the magic names), `s1 += x0 + s2; s2 += x1 + s1`, modulo 2^32,
 * continuing from (s1, s2). `data.byteLength` must be a multiple of 8.
 */
export function walChecksum(data: Uint8Array, bigEndian: boolean, s1: number, s2: number): [number, number] {
  const n = data.byteLength >>> 2;
  // Fast path: a native little-endian view when the bytes are aligned.
  if (!bigEndian && (data.byteOffset & 3) === 0 && nativeLittleEndian) {
    const w = new Uint32Array(data.buffer, data.byteOffset, n);
    for (let i = 0; i < n; i += 2) {
      s1 = (s1 + w[i]! + s2) >>> 0;
      s2 = (s2 + w[i + 1]! + s1) >>> 0;
    }
    return [s1, s2];
  }
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const le = !bigEndian;
  for (let i = 0; i < n; i += 2) {
    s1 = (s1 + v.getUint32(i * 4, le) + s2) >>> 0;
    s2 = (s2 + v.getUint32(i * 4 + 4, le) + s1) >>> 0;
  }
  return [s1, s2];
}

const nativeLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Position right after the header of `header`'s log. */
export function walStartPosition(header: WalHeader): WalPosition {
  return {
    salt1: header.salt1,
    salt2: header.salt2,
    pageSize: header.pageSize,
    bigEndianChecksums: header.bigEndianChecksums,
    offset: WAL_HEADER_SIZE,
    checksum1: header.checksum1,
    checksum2: header.checksum2,
  };
}

/** Position right after `frame` (a commit frame) in the log that `from` points into. */
export function positionAfter(from: WalPosition, frame: WalFrame): WalPosition {
  // Spelled out, not spread: this runs once per shipped transaction (a spread was ~2.6 % of the shipper thread).
  return {
    salt1: from.salt1, salt2: from.salt2, pageSize: from.pageSize, bigEndianChecksums: from.bigEndianChecksums,
    offset: frame.offset + WAL_FRAME_HEADER_SIZE + from.pageSize, checksum1: frame.checksum1, checksum2: frame.checksum2,
  };
}

function sourceSize(src: WalSource): number {
  return typeof src === 'number' ? fstatSync(src).size : src.byteLength;
}

function readRange(src: WalSource, offset: number, length: number, into?: ReadBuffer): Uint8Array {
  if (typeof src !== 'number') return src.subarray(offset, offset + length);
  // An ArrayBuffer of its own keeps the page views 4-byte aligned (fast checksum path).
  const out = into ? into.take(length) : new Uint8Array(new ArrayBuffer(length));
  let done = 0;
  while (done < length) {
    const n = readSync(src, out, done, length - done, offset + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? out : out.subarray(0, done);
}

/**
 * A buffer reused by successive reads of one thread's WALs (see
 * {@link readWal}): a fresh multi-megabyte buffer per read costs more than
 * the read itself (zero-filling and page faults, then garbage collection).
 * It grows to the largest read and is dropped when that was more than
 * `keepBytes`, so one huge transaction does not pin its size for good.
 */
export class ReadBuffer {
  #buf = new Uint8Array(0);
  readonly #keepBytes: number;

  constructor(keepBytes = 8 << 20) {
    this.#keepBytes = keepBytes;
  }

  /** A 4-byte-aligned view of `length` bytes, valid until the next `take`. */
  take(length: number): Uint8Array {
    if (this.#buf.byteLength < length) this.#buf = new Uint8Array(new ArrayBuffer(Math.max(length, Math.min(this.#keepBytes, this.#buf.byteLength * 2))));
    return this.#buf.subarray(0, length);
  }

  /** Let go of a buffer grown past `keepBytes` (call when its views are no longer used). */
  trim(): void {
    if (this.#buf.byteLength > this.#keepBytes) this.#buf = new Uint8Array(0);
  }
}

/**
 * Read the committed frames of a WAL, from its start or from `from` (a position
 * returned by an earlier read of the same log). With `from`, a log whose salts,
 * page size or checksum order differ, or that is now shorter than `from.offset`,
 * is reported as `restart`: the frames after `from` are not the ones that
 * followed it. With `into`, the frames' page images are views into that
 * reused buffer: they are valid until its next read.
 */
export function readWal(src: WalSource, from?: WalPosition, into?: ReadBuffer): WalReadResult {
  const size = sourceSize(src);
  const header = parseWalHeader(readRange(src, 0, Math.min(size, WAL_HEADER_SIZE)));
  if (!from) {
    if (!header) return { kind: 'empty' };
    return readFrames(src, size, header, walStartPosition(header), into);
  }
  if (!header) return { kind: 'restart', reason: 'header-invalid', header: null };
  if (header.salt1 !== from.salt1 || header.salt2 !== from.salt2) return { kind: 'restart', reason: 'salt-changed', header };
  if (header.pageSize !== from.pageSize || header.bigEndianChecksums !== from.bigEndianChecksums) {
    return { kind: 'restart', reason: 'format-changed', header };
  }
  if (size < from.offset) return { kind: 'restart', reason: 'shrunk', header };
  return readFrames(src, size, header, from, into);
}

/**
 * How many of the `whole` frame slots from `offset` on carry the log's salts,
 * found with a few 24-byte reads instead of reading them all. The frames of
 * the current log come first, one after the other; whatever follows them in
 * the file (the frames of an earlier log, after `wal_checkpoint(RESTART)`,
 * which keeps the file's size) has other salts. Without this a read after
 * such a checkpoint would copy megabytes of old frames only to stop at the
 * first of them. The frames counted are then checked as before (checksums).
 */
function framesWithSalts(fd: number, header: WalHeader, offset: number, frameSize: number, whole: number): number {
  const head = new Uint8Array(new ArrayBuffer(WAL_FRAME_HEADER_SIZE));
  const view = new DataView(head.buffer);
  const ours = (i: number): boolean => {
    if (readSync(fd, head, 0, WAL_FRAME_HEADER_SIZE, offset + i * frameSize) !== WAL_FRAME_HEADER_SIZE) return false;
    return view.getUint32(8) === header.salt1 && view.getUint32(12) === header.salt2;
  };
  if (whole === 0 || ours(whole - 1)) return whole; // the usual case: the file ends with the log
  if (!ours(0)) return 0;
  let lo = 0; // ours
  let hi = whole - 1; // not ours
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (ours(mid)) lo = mid;
    else hi = mid;
  }
  return hi;
}

function readFrames(src: WalSource, size: number, header: WalHeader, from: WalPosition, into: ReadBuffer | undefined): WalReadResult & { kind: 'frames' } {
  const frameSize = WAL_FRAME_HEADER_SIZE + header.pageSize;
  const slots = Math.floor((size - from.offset) / frameSize);
  const whole = typeof src === 'number' ? framesWithSalts(src, header, from.offset, frameSize, slots) : slots;
  const buf = whole > 0 ? readRange(src, from.offset, whole * frameSize, into) : new Uint8Array(0);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  // Fast path: little-endian checksums over an aligned buffer are summed over one word view,
  // without a view or a result array per frame (frame size is a multiple of 8).
  const words = !header.bigEndianChecksums && nativeLittleEndian && (buf.byteOffset & 3) === 0
    ? new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2)
    : null;
  const frames: WalFrame[] = [];
  let s1 = from.checksum1;
  let s2 = from.checksum2;
  let lastCommit = -1;
  let commitS1 = s1;
  let commitS2 = s2;
  let commits = 0;
  let count = 0;
  for (let i = 0; i < whole && (i + 1) * frameSize <= buf.byteLength; i++) {
    const at = i * frameSize;
    const pgno = view.getUint32(at);
    const commitSize = view.getUint32(at + 4);
    if (pgno === 0) break;
    if (view.getUint32(at + 8) !== header.salt1 || view.getUint32(at + 12) !== header.salt2) break;
    if (words) {
      // The frame header's first 8 bytes, then the page.
      const w0 = at >>> 2;
      s1 = (s1 + words[w0]! + s2) >>> 0;
      s2 = (s2 + words[w0 + 1]! + s1) >>> 0;
      const end = (at + frameSize) >>> 2;
      for (let w = (at + WAL_FRAME_HEADER_SIZE) >>> 2; w < end; w += 2) {
        s1 = (s1 + words[w]! + s2) >>> 0;
        s2 = (s2 + words[w + 1]! + s1) >>> 0;
      }
    } else {
      [s1, s2] = walChecksum(buf.subarray(at, at + 8), header.bigEndianChecksums, s1, s2);
      [s1, s2] = walChecksum(buf.subarray(at + WAL_FRAME_HEADER_SIZE, at + frameSize), header.bigEndianChecksums, s1, s2);
    }
    if (view.getUint32(at + 16) !== s1 || view.getUint32(at + 20) !== s2) break;
    count++;
    if (commitSize !== 0) {
      // Frames are made only up to the last commit: SQLite overwrites the rest.
      for (let j = lastCommit + 1; j <= i; j++) {
        const fa = j * frameSize;
        frames.push({
          pgno: j === i ? pgno : view.getUint32(fa), commitSize: j === i ? commitSize : 0,
          data: buf.subarray(fa + WAL_FRAME_HEADER_SIZE, fa + frameSize), offset: from.offset + fa,
          checksum1: j === i ? s1 : view.getUint32(fa + 16), checksum2: j === i ? s2 : view.getUint32(fa + 20),
        });
      }
      lastCommit = i;
      commitS1 = s1;
      commitS2 = s2;
      commits++;
    }
  }
  const lastCommitOffset = from.offset + (lastCommit + 1) * frameSize;
  return {
    kind: 'frames',
    header,
    frames,
    commits,
    endOffset: from.offset + count * frameSize,
    lastCommitOffset,
    position: { ...from, offset: lastCommitOffset, checksum1: commitS1, checksum2: commitS2 },
  };
}
