/**
 * Segments: immutable objects holding one or more committed transactions of
 * one generation, in txid order. Each transaction keeps its own page set so a
 * restore can stop at any txid inside a segment (PITR). Byte layout:
 * docs/replication-format.md.
 *
 * Format 2 (written since 2026-11-29) compresses the page data of all the
 * segment's transactions as one stream; format 1 compressed each transaction
 * on its own. Measured under write load (one row per transaction, ~240
 * transactions per segment): one compressor per transaction cost more CPU
 * than everything else of shipping together, and consecutive images of the
 * same page compress far better in one stream. Format 3 (written since
 * 2026-12-07) has format 2's layout and names the page hash of its checksums
 * in the field formats 1–2 reserved (they imply SHA-256, page hash 0): new
 * generations hash pages with XXH64, ~4× cheaper per page (page-hash.js).
 * All three are read.
 */
import { hash } from 'node:crypto';
import { backupInvalid, ByteReader, ByteWriter } from './binary.ts';
import { Compression, compress, compressAsync, compressesInPlace, decompress, decompressAsync, isKnownCompression, type CompressionId } from './compression.ts';
import { isKnownPageHash, PageHash, pageHashName, type DbChecksum, type PageHashId } from './checksum.ts';

/** Magic of a segment object. */
export const SEGMENT_MAGIC = 'DSEG';
/** Format major version this build writes; it reads this one, {@link SEGMENT_MAJOR_V2} and {@link SEGMENT_MAJOR_V1}, refuses others. */
export const SEGMENT_MAJOR = 3;
/** Format 3's layout without its page hash field: checksums are SHA-256 page hashes. */
export const SEGMENT_MAJOR_V2 = 2;
/** The first format: one compressed body per transaction (SHA-256 page hashes). */
export const SEGMENT_MAJOR_V1 = 1;
/** Format minor version this build writes; higher minors only append fields older readers skip. */
export const SEGMENT_MINOR = 0;
const TX_ENTRY_SIZE = 40;
const TRAILER_SIZE = 32;

/** Who and where a segment or snapshot belongs to. */
export interface ObjectIdentity {
  tenant: string;
  incarnation: string;
  /** Generation id (see `newGenerationId`). */
  generation: string;
  epoch: number;
}

/** One page image. */
export interface PageImage {
  pgno: number;
  data: Uint8Array;
}

/** One transaction (one txid) inside a segment. */
export interface SegmentTransaction {
  txid: number;
  /** Commit time, ms since the epoch (as seen by the shipper). */
  time: number;
  /** Smallest database size (pages) among the WAL commits of this txid: pages past it are dropped before `pages` are written. */
  truncateTo: number;
  /** Database size in pages after the transaction. */
  commitSize: number;
  /** Database checksum after the transaction. */
  postChecksum: DbChecksum;
  /** Pages written, ascending by page number, each at most once (the last image wins). */
  pages: PageImage[];
}

/** Fields of a segment besides its transactions. */
export interface SegmentHeader extends ObjectIdentity {
  pageSize: number;
  /** The page hash `preChecksum` and every `postChecksum` sum (the generation's; formats 1–2: SHA-256). */
  pageHash: PageHashId;
  /** Database checksum before the first transaction. */
  preChecksum: DbChecksum;
  /** Database size in pages before the first transaction. */
  prePageCount: number;
}

/** Encoder options. */
export interface EncodeOptions {
  /** Default brotli (quality 1). */
  compression?: CompressionId;
}

/** Encode a segment. Throws RangeError on inputs the format cannot hold (a programming error, not corruption). */
export function encodeSegment(header: SegmentHeader, txs: readonly SegmentTransaction[], opts: EncodeOptions = {}): Uint8Array {
  const compression = opts.compression ?? Compression.brotli;
  // compress() is synchronous and (but for `none`) returns a buffer of its own: the gathered data may be reused at once.
  const { all, raws } = rawBodies(header, txs, () => compression !== Compression.none);
  return assembleSegment(header, txs, raws, compress(compression, all), compression);
}

/**
 * {@link encodeSegment} with the page data compressed on the libuv thread pool
 * (a node's event loop stays free). The page images are copied before it
 * returns its promise: the caller may reuse their buffers at once (the shipper
 * reads every WAL through one buffer).
 */
export async function encodeSegmentAsync(header: SegmentHeader, txs: readonly SegmentTransaction[], opts: EncodeOptions = {}): Promise<Uint8Array> {
  const compression = opts.compression ?? Compression.brotli;
  const { all, raws } = rawBodies(header, txs, (bytes) => compressesInPlace(compression, bytes));
  return assembleSegment(header, txs, raws, await compressAsync(compression, all), compression);
}

/** A format 1 segment (one compressed body per transaction), as builds before format 2 wrote them: for compatibility tests. */
export function encodeSegmentV1(header: SegmentHeader, txs: readonly SegmentTransaction[], opts: EncodeOptions = {}): Uint8Array {
  const compression = opts.compression ?? Compression.brotli;
  const bodies = rawBodies(header, txs).raws.map((raw) => compress(compression, raw));
  // Same layout but the major version and each entry's length (the compressed one).
  return asOlderFormat(SEGMENT_MAJOR_V1, header, assembleSegment(header, txs, bodies, Buffer.concat(bodies), compression));
}

/** A format 2 segment, as builds before format 3 wrote them: for compatibility tests. */
export function encodeSegmentV2(header: SegmentHeader, txs: readonly SegmentTransaction[], opts: EncodeOptions = {}): Uint8Array {
  return asOlderFormat(SEGMENT_MAJOR_V2, header, encodeSegment(header, txs, opts));
}

/** Formats 1–2: the major version rewritten, the page hash field back to reserved (0), re-sealed. Their checksums are SHA-256's. */
function asOlderFormat(major: number, header: SegmentHeader, bytes: Uint8Array): Uint8Array {
  if (header.pageHash !== PageHash.sha256) throw new RangeError(`segment format ${major} has SHA-256 page hashes only`);
  const body = Buffer.from(bytes.subarray(0, bytes.byteLength - TRAILER_SIZE));
  body.writeUInt16BE(major, 4);
  body.writeUInt16BE(0, 26);
  return new Uint8Array(Buffer.concat([body, hash('sha256', body, 'buffer')]));
}

/**
 * Page data gathered for a compressor that is done with it before the encoder
 * returns: one buffer per thread, reused (grown as needed, up to
 * {@link SEGMENT_IN_PLACE_BYTES}). A fresh buffer per segment is paid in page
 * faults and garbage collection: reusing it took the shipper thread from
 * 25–26 to 19–20 µs per write (`pnpm bench:replication --only load --modes
 * async-fs`, loadtest/RESULTS.md).
 */
let gather = Buffer.alloc(0);

/**
 * Page data up to this size is gathered in the thread's reused buffer, and the
 * shipper thread compresses it in place (`compressInlineBelow`); larger page
 * data gets a fresh buffer and the libuv pool. 8 MiB: a busy tenant's segment
 * at the default 500 ms shipping interval holds ~4 MiB (1,000 one-row
 * transactions a second, two page images each: the row's leaf and the txid's),
 * and the 4 MiB this was before put such segments on either side of the limit
 * pass by pass. Past it, capture and encode cost 20 against 12–14 µs per
 * transaction ("capture + encode … shipper thread" in
 * `loadtest/replication-format-bench.ts`): the fresh buffer's page faults,
 * and brotli's setup on a pool thread. The cost of the larger limit: brotli
 * may hold the shipper thread for 20–70 ms (8 MiB of random bytes, here),
 * and the buffer, once grown, stays allocated (one per thread).
 */
export const SEGMENT_IN_PLACE_BYTES = 8 << 20;

/** The capacity of this thread's reused page-data buffer (tests). */
export function gatherBufferBytes(): number {
  return gather.byteLength;
}

/**
 * The page data of all transactions before compression, in order (`all`, the
 * format 2 body), and each transaction's part of it (`raws`): (u32 pgno,
 * page) in ascending page order. Copies the page images: the caller may
 * reuse theirs. `reusable(bytes)`: whether the caller is done with `all`
 * before anything else can run on this thread; then `all` is a view of the
 * thread's {@link gather} buffer (and `raws` of it, good for their lengths
 * only once the next segment is gathered).
 */
function rawBodies(header: SegmentHeader, txs: readonly SegmentTransaction[], reusable: (bytes: number) => boolean = () => false): { all: Buffer; raws: Buffer[] } {
  if (txs.length === 0) throw new RangeError('a segment holds at least one transaction');
  let total = 0;
  for (let i = 0; i < txs.length; i++) {
    if (i > 0 && txs[i]!.txid !== txs[i - 1]!.txid + 1) throw new RangeError('segment transactions must have consecutive txids');
    total += txs[i]!.pages.length * (4 + header.pageSize);
  }
  let all: Buffer;
  if (total <= SEGMENT_IN_PLACE_BYTES && reusable(total)) {
    if (gather.byteLength < total) gather = Buffer.allocUnsafeSlow(Math.min(SEGMENT_IN_PLACE_BYTES, Math.max(total, 2 * gather.byteLength)));
    all = gather.subarray(0, total);
  } else {
    all = Buffer.allocUnsafe(total);
  }
  let at = 0;
  const raws = txs.map((tx) => {
    const from = at;
    let prev = 0;
    for (const p of tx.pages) {
      if (p.pgno <= prev || p.data.byteLength !== header.pageSize) throw new RangeError('pages must be ascending, unique and page-sized');
      prev = p.pgno;
      all.writeUInt32BE(p.pgno, at);
      all.set(p.data, at + 4);
      at += 4 + header.pageSize;
    }
    return all.subarray(from, at);
  });
  return { all, raws };
}

/** Formats 2–3: the transaction table gives each transaction's uncompressed length; one compressed body follows. */
function assembleSegment(header: SegmentHeader, txs: readonly SegmentTransaction[], raws: readonly Uint8Array[], body: Uint8Array, compression: CompressionId): Uint8Array {
  const w = new ByteWriter();
  w.bytes(Buffer.from(SEGMENT_MAGIC, 'latin1')).u16(SEGMENT_MAJOR).u16(SEGMENT_MINOR);
  const headerLengthAt = w.length;
  w.u32(0).u32(compression).u32(header.pageSize).u32(txs.length).u16(TX_ENTRY_SIZE).u16(header.pageHash);
  w.u53(header.epoch).u53(txs[0]!.txid).u53(txs.at(-1)!.txid).u64(header.preChecksum).u32(header.prePageCount);
  w.str(header.tenant).str(header.incarnation).str(header.generation);
  w.setU32(headerLengthAt, w.length);
  txs.forEach((tx, i) => {
    w.u53(tx.txid).u53(tx.time).u32(tx.truncateTo).u32(tx.commitSize).u32(tx.pages.length).u64(tx.postChecksum).u32(raws[i]!.byteLength);
  });
  w.bytes(body);
  w.bytes(hash('sha256', w.view(), 'buffer'));
  return new Uint8Array(w.view());
}

/** A decoded transaction; `pages()` decompresses (and validates) its page images on demand. */
export interface DecodedTransaction extends Omit<SegmentTransaction, 'pages'> {
  /** Number of page images. */
  pageCount: number;
  /** Decompress the page images (views into one buffer). */
  pages(): PageImage[];
  /** Like {@link pages}, decompressing on the thread pool; later `pages()` calls return the same images. */
  loadPages(): Promise<PageImage[]>;
}

/** A decoded segment. */
export interface DecodedSegment extends SegmentHeader {
  major: number;
  minor: number;
  minTxid: number;
  maxTxid: number;
  /** Database checksum after the last transaction. */
  postChecksum: DbChecksum;
  /** Database size after the last transaction. */
  postPageCount: number;
  transactions: DecodedTransaction[];
  /** Encoded size in bytes. */
  bytes: number;
}

/**
 * Decode and validate a segment: magic, major version, trailer SHA-256 over the
 * whole object, then every field. Any problem is BACKUP_INVALID (`what` names
 * the object in the message, e.g. its key).
 */
export function decodeSegment(bytes: Uint8Array, what = 'segment'): DecodedSegment {
  const r = new ByteReader(bytes, what);
  const magic = Buffer.from(r.bytes(4, 'magic')).toString('latin1');
  if (magic !== SEGMENT_MAGIC) throw backupInvalid(`${what} is not a Domicile segment (bad magic).`);
  const major = r.u16('major version');
  const minor = r.u16('minor version');
  if (major !== SEGMENT_MAJOR && major !== SEGMENT_MAJOR_V2 && major !== SEGMENT_MAJOR_V1) {
    throw backupInvalid(`${what} has segment format ${major}.${minor}; this build reads major versions ${SEGMENT_MAJOR_V1} to ${SEGMENT_MAJOR}.`, { formatMajor: major });
  }
  if (bytes.byteLength < r.pos + TRAILER_SIZE) throw backupInvalid(`${what} is truncated.`);
  const body = bytes.subarray(0, bytes.byteLength - TRAILER_SIZE);
  const trailer = bytes.subarray(bytes.byteLength - TRAILER_SIZE);
  if (!Buffer.from(trailer).equals(hash('sha256', body, 'buffer'))) throw backupInvalid(`${what}: trailer checksum mismatch (corrupt or truncated object).`);

  const hr = new ByteReader(body, what, r.pos);
  const headerLength = hr.u32('header length');
  const compression = hr.u32('flags');
  const pageSize = hr.u32('page size');
  const txCount = hr.u32('transaction count');
  const entrySize = hr.u16('transaction entry size');
  const pageHashField = hr.u16('page hash');
  const epoch = hr.u53('epoch');
  const minTxid = hr.u53('min txid');
  const maxTxid = hr.u53('max txid');
  const preChecksum = hr.u64('pre checksum');
  const prePageCount = hr.u32('pre page count');
  const tenant = hr.str('tenant');
  const incarnation = hr.str('incarnation');
  const generation = hr.str('generation');
  if (!isKnownCompression(compression)) throw backupInvalid(`${what}: unknown compression ${compression}.`);
  // Formats 1–2 reserved the field (0) and hash with SHA-256.
  const pageHash = major === SEGMENT_MAJOR ? pageHashField : PageHash.sha256;
  if (!isKnownPageHash(pageHash)) throw backupInvalid(`${what}: unknown ${pageHashName(pageHash)}.`);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) throw backupInvalid(`${what}: invalid page size ${pageSize}.`);
  if (headerLength < hr.pos || headerLength > body.byteLength) throw backupInvalid(`${what}: invalid header length.`);
  if (entrySize < TX_ENTRY_SIZE) throw backupInvalid(`${what}: invalid transaction entry size.`);
  if (txCount < 1 || maxTxid < minTxid || maxTxid - minTxid + 1 !== txCount) throw backupInvalid(`${what}: txid range ${minTxid}..${maxTxid} does not match ${txCount} transactions.`);

  const tr = new ByteReader(body, what, headerLength);
  const entries: Array<Omit<DecodedTransaction, 'pages' | 'loadPages'> & { bodyLength: number }> = [];
  for (let i = 0; i < txCount; i++) {
    const er = new ByteReader(tr.bytes(entrySize, 'transaction entry'), what);
    entries.push({
      txid: er.u53('txid'),
      time: er.u53('time'),
      truncateTo: er.u32('truncate size'),
      commitSize: er.u32('commit size'),
      pageCount: er.u32('page count'),
      postChecksum: er.u64('post checksum'),
      bodyLength: er.u32('body length'),
    });
  }
  let at = tr.pos;
  let prevTime = 0;
  let rawAt = 0;
  // Formats 2–3: one compressed stream for every transaction, decompressed once on first use.
  const oneStream = major !== SEGMENT_MAJOR_V1;
  const rawTotal = oneStream ? entries.reduce((n, e) => n + e.bodyLength, 0) : 0;
  const shared = oneStream ? new SharedPageData(compression, body.subarray(tr.pos), rawTotal, what) : undefined;
  const transactions: DecodedTransaction[] = entries.map((e, i) => {
    if (e.txid !== minTxid + i) throw backupInvalid(`${what}: transaction ${i} has txid ${e.txid}, expected ${minTxid + i}.`);
    if (e.time < prevTime) throw backupInvalid(`${what}: commit times go backwards at txid ${e.txid}.`);
    prevTime = e.time;
    if (e.commitSize < 1 || e.truncateTo > e.commitSize) throw backupInvalid(`${what}: invalid database size at txid ${e.txid}.`);
    if (e.pageCount > e.commitSize) throw backupInvalid(`${what}: more pages than the database holds at txid ${e.txid}.`);
    const expected = e.pageCount * (4 + pageSize);
    if (shared) {
      if (e.bodyLength !== expected) throw backupInvalid(`${what}: transaction ${e.txid} page data has ${e.bodyLength} bytes, expected ${expected}.`);
      const from = rawAt;
      rawAt += expected;
      return new LazyTransaction(e, pageSize, what, { shared, from, length: expected });
    }
    if (at + e.bodyLength > body.byteLength) throw backupInvalid(`${what}: transaction body past the end.`);
    const compressed = body.subarray(at, at + e.bodyLength);
    at += e.bodyLength;
    return new LazyTransaction(e, pageSize, what, { compression, compressed, length: expected });
  });
  if (!shared && at !== body.byteLength) throw backupInvalid(`${what}: ${body.byteLength - at} unexpected bytes after the last transaction.`);
  const last = transactions.at(-1)!;
  return {
    tenant, incarnation, generation, epoch, pageSize, pageHash, preChecksum, prePageCount, major, minor, minTxid, maxTxid,
    postChecksum: last.postChecksum, postPageCount: last.commitSize, transactions, bytes: bytes.byteLength,
  };
}

/** Formats 2–3's one compressed stream of every transaction's pages, inflated once on first use. */
class SharedPageData {
  #all: Uint8Array | undefined;
  #loading: Promise<Uint8Array> | undefined;

  constructor(readonly compression: number, readonly compressed: Uint8Array, readonly rawTotal: number, readonly what: string) {}

  get(): Uint8Array {
    return (this.#all ??= decompress(this.compression, this.compressed, this.rawTotal, this.what));
  }

  async load(): Promise<Uint8Array> {
    return (this.#all ??= await (this.#loading ??= decompressAsync(this.compression, this.compressed, this.rawTotal, this.what)));
  }
}

/** Where a transaction's page data is: a slice of the segment's shared stream (formats 2–3), or its own compressed body (format 1). */
type PageSource =
  | { shared: SharedPageData; from: number; length: number }
  | { compression: number; compressed: Uint8Array; length: number };

/**
 * A decoded transaction whose pages are inflated on first use. A class, not
 * closures: a segment of many small transactions made three functions per
 * transaction (and tsx names each one), a visible share of a restore.
 */
class LazyTransaction implements DecodedTransaction {
  readonly txid: number;
  readonly time: number;
  readonly truncateTo: number;
  readonly commitSize: number;
  readonly pageCount: number;
  readonly postChecksum: DbChecksum;
  readonly #pageSize: number;
  readonly #what: string;
  readonly #source: PageSource;
  #pages: PageImage[] | undefined;

  constructor(e: { txid: number; time: number; truncateTo: number; commitSize: number; pageCount: number; postChecksum: DbChecksum }, pageSize: number, segmentWhat: string, source: PageSource) {
    this.txid = e.txid;
    this.time = e.time;
    this.truncateTo = e.truncateTo;
    this.commitSize = e.commitSize;
    this.pageCount = e.pageCount;
    this.postChecksum = e.postChecksum;
    this.#pageSize = pageSize;
    this.#what = segmentWhat;
    this.#source = source;
  }

  pages(): PageImage[] {
    if (this.#pages) return this.#pages;
    const src = this.#source;
    return this.#split('shared' in src ? src.shared.get() : decompress(src.compression, src.compressed, src.length, this.#txWhat()));
  }

  async loadPages(): Promise<PageImage[]> {
    if (this.#pages) return this.#pages;
    const src = this.#source;
    const raw = 'shared' in src ? await src.shared.load() : await decompressAsync(src.compression, src.compressed, src.length, this.#txWhat());
    return this.#pages ?? this.#split(raw);
  }

  #txWhat(): string {
    return `${this.#what} txid ${this.txid}`;
  }

  /** `raw`: the shared stream (sliced here) or this transaction's own inflated body. */
  #split(raw: Uint8Array): PageImage[] {
    const src = this.#source;
    const mine = 'shared' in src ? raw.subarray(src.from, src.from + src.length) : raw;
    this.#pages = splitPages(mine, this.pageCount, this.#pageSize, this.commitSize, this.#txWhat());
    return this.#pages;
  }
}

function splitPages(raw: Uint8Array, count: number, pageSize: number, commitSize: number, what: string): PageImage[] {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const pages: PageImage[] = [];
  let prev = 0;
  for (let i = 0; i < count; i++) {
    const at = i * (4 + pageSize);
    const pgno = view.getUint32(at);
    if (pgno <= prev || pgno > commitSize) throw backupInvalid(`${what}: page numbers out of order or past the database size.`);
    prev = pgno;
    pages.push({ pgno, data: raw.subarray(at + 4, at + 4 + pageSize) });
  }
  return pages;
}
