/**
 * Reads the `_domicile_meta` row (tenant, incarnation, epoch, txid) straight
 * from page images, without SQLite: the shipper learns which txid each WAL
 * commit produced from the pages themselves (docs/replication-format.md,
 * "Attributing txids"), and snapshots and restores check the txid they claim.
 * Just enough of the B-tree format (https://sqlite.org/fileformat2.html):
 * table B-trees, records, overflow chains.
 */

/** Page number → page image, or undefined past the end of the database. */
export type PageGetter = (pgno: number) => Uint8Array | undefined;

/** The `_domicile_meta` row (META_FORMAT 1 column order: id, tenant, incarnation, epoch, txid, format, created_at). */
export interface DomicileMeta {
  tenant: string;
  incarnation: string;
  epoch: number;
  txid: number;
}

/** Thrown for a page structure that cannot be a valid B-tree. */
export class MalformedDatabaseError extends Error {
  override name = 'MalformedDatabaseError';
}

const META_TABLE = '_domicile_meta';
const MAX_PAGES_VISITED = 100_000;
/** Offset of the schema cookie in page 1: SQLite adds one to it on every schema change (VACUUM included). */
const SCHEMA_COOKIE_OFFSET = 40;

/** The meta row, or null when the database has no `_domicile_meta` table (or it is empty). */
export function readDomicileMeta(getPage: PageGetter): DomicileMeta | null {
  return new DomicileMetaReader().read(getPage);
}

/**
 * {@link readDomicileMeta} for one database read commit after commit (the
 * shipper attributes a txid to every WAL commit). It remembers where
 * `_domicile_meta` is rooted for page 1's schema cookie, so the schema is
 * scanned again only after a schema change, and reads the row from a root
 * leaf without allocating (the tenant and incarnation strings are decoded once
 * and reused while their bytes stay the same). Any other shape (a root that is
 * an interior page, a row spilling to overflow pages) takes the general path.
 * The answers are the same as {@link readDomicileMeta}'s (a test compares
 * them over random schema histories).
 */
export class DomicileMetaReader {
  /** Schema cookie under which {@link #root} was found; undefined: not looked up yet. */
  #cookie: number | undefined;
  /** Root page of `_domicile_meta`, 0 when that schema has no such table. */
  #root = 0;
  readonly #tenant = new TextCache();
  readonly #incarnation = new TextCache();

  read(getPage: PageGetter): DomicileMeta | null {
    const page1 = getPage(1);
    if (!page1) return null;
    if (page1.byteLength < 100) throw new MalformedDatabaseError('page 1 too short');
    const usable = page1.byteLength - page1[20]!;
    const cookie = readU32(page1, SCHEMA_COOKIE_OFFSET);
    if (cookie !== this.#cookie) {
      this.#root = findMetaRoot(getPage, usable);
      this.#cookie = cookie;
    }
    if (this.#root === 0) return null;
    const row = this.#leafRow(getPage, usable);
    return row === undefined ? firstMetaRow(getPage, this.#root, usable) : row;
  }

  /** The row when the root is a leaf holding it whole; undefined for the general path; null for an empty table. */
  #leafRow(getPage: PageGetter, usable: number): DomicileMeta | null | undefined {
    const page = getPage(this.#root);
    if (!page) throw new MalformedDatabaseError(`B-tree page ${this.#root} past the end`);
    if (page[0] !== 0x0d) return undefined;
    if (readU16(page, 3) === 0) return null;
    let at = readU16(page, 8);
    const payloadSize = readVarint(page, at);
    at += varintLength;
    at += varintSize(page, at); // rowid
    if (payloadSize > usable - 35) return undefined;
    if (at + payloadSize > page.byteLength) throw new MalformedDatabaseError('cell past the end of its page');
    const cols = metaColumns(page, at, at + payloadSize);
    return {
      tenant: this.#tenant.decode(page, cols.tenantAt, cols.tenantEnd),
      incarnation: this.#incarnation.decode(page, cols.incarnationAt, cols.incarnationEnd),
      epoch: cols.epoch,
      txid: cols.txid,
    };
  }
}

/** Root page of `_domicile_meta` from the schema table, 0 when there is none. */
function findMetaRoot(getPage: PageGetter, usable: number): number {
  for (const rec of scanTable(getPage, 1, usable)) {
    const values = parseRecord(rec, 4);
    if (values[0] === 'table' && values[1] === META_TABLE) {
      if (typeof values[3] !== 'number' || values[3] < 1) throw new MalformedDatabaseError('bad root page of _domicile_meta');
      return values[3];
    }
  }
  return 0;
}

/** The first row of the table rooted at `root`, decoded as the meta row; null when the table is empty. */
function firstMetaRow(getPage: PageGetter, root: number, usable: number): DomicileMeta | null {
  for (const rec of scanTable(getPage, root, usable)) {
    const cols = metaColumns(rec, 0, rec.byteLength);
    return {
      tenant: utf8(rec, cols.tenantAt, cols.tenantEnd),
      incarnation: utf8(rec, cols.incarnationAt, cols.incarnationEnd),
      epoch: cols.epoch,
      txid: cols.txid,
    };
  }
  return null;
}

/** Where columns 1–4 of a meta record (`rec[start..end)`) are: tenant and incarnation text, epoch and txid integers. */
interface MetaColumns { tenantAt: number; tenantEnd: number; incarnationAt: number; incarnationEnd: number; epoch: number; txid: number }

const metaCols: MetaColumns = { tenantAt: 0, tenantEnd: 0, incarnationAt: 0, incarnationEnd: 0, epoch: 0, txid: 0 };

/**
 * Columns 1–4 of the meta record in `rec[start..end)` (META_FORMAT 1: id,
 * tenant, incarnation, epoch, txid, …). Throws for any other shape. The
 * result is one shared object, valid until the next call.
 */
function metaColumns(rec: Uint8Array, start: number, end: number): MetaColumns {
  const hdrSize = readVarint(rec, start);
  let h = start + varintLength;
  const hdrEnd = start + hdrSize;
  let body = hdrEnd;
  if (hdrEnd > end) throw new MalformedDatabaseError('record header past its payload');
  for (let col = 0; col < 5; col++) {
    if (h >= hdrEnd) throw new MalformedDatabaseError('unexpected _domicile_meta row');
    const t = readVarint(rec, h);
    h += varintLength;
    const len = serialTypeLength(t);
    if (body + len > end) throw new MalformedDatabaseError('record value past its payload');
    if (col === 1 || col === 2) {
      if (t < 13 || t % 2 === 0) throw new MalformedDatabaseError('unexpected _domicile_meta row');
      if (col === 1) { metaCols.tenantAt = body; metaCols.tenantEnd = body + len; } else { metaCols.incarnationAt = body; metaCols.incarnationEnd = body + len; }
    } else if (col >= 3) {
      let v: number;
      if (t === 8) v = 0;
      else if (t === 9) v = 1;
      else if (t >= 1 && t <= 6) v = readInt(rec, body, len);
      else throw new MalformedDatabaseError('unexpected _domicile_meta row');
      if (col === 3) metaCols.epoch = v; else metaCols.txid = v;
    }
    body += len;
  }
  return metaCols;
}

/** A decoded string reused while the bytes it came from stay the same. */
class TextCache {
  #bytes = new Uint8Array(0);
  #text = '';

  decode(b: Uint8Array, start: number, end: number): string {
    const n = end - start;
    let same = n === this.#bytes.byteLength;
    for (let i = 0; same && i < n; i++) same = b[start + i] === this.#bytes[i];
    if (!same) {
      this.#bytes = b.slice(start, end);
      this.#text = utf8(b, start, end);
    }
    return this.#text;
  }
}

function utf8(b: Uint8Array, start: number, end: number): string {
  return Buffer.from(b.buffer, b.byteOffset + start, end - start).toString('utf8');
}

/** Payloads (whole, overflow followed) of every row of the table B-tree rooted at `root`. */
function* scanTable(getPage: PageGetter, root: number, usable: number): Generator<Uint8Array> {
  const stack = [root];
  let visited = 0;
  while (stack.length > 0) {
    const pgno = stack.pop()!;
    if (++visited > MAX_PAGES_VISITED) throw new MalformedDatabaseError('B-tree too deep or cyclic');
    const page = getPage(pgno);
    if (!page) throw new MalformedDatabaseError(`B-tree page ${pgno} past the end`);
    const hdr = pgno === 1 ? 100 : 0;
    const type = page[hdr];
    const cells = readU16(page, hdr + 3);
    if (type === 0x05) {
      const children: number[] = [];
      for (let i = 0; i < cells; i++) children.push(readU32(page, readU16(page, hdr + 12 + 2 * i)));
      children.push(readU32(page, hdr + 8));
      // Depth-first, left to right.
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
    } else if (type === 0x0d) {
      for (let i = 0; i < cells; i++) {
        let at = readU16(page, hdr + 8 + 2 * i);
        const payloadSize = readVarint(page, at);
        at += varintLength;
        at += varintSize(page, at); // rowid
        yield readPayload(getPage, page, at, payloadSize, usable);
      }
    } else {
      throw new MalformedDatabaseError(`page ${pgno} is not a table B-tree page (type ${type})`);
    }
  }
}

function readPayload(getPage: PageGetter, page: Uint8Array, at: number, size: number, usable: number): Uint8Array {
  const maxLocal = usable - 35;
  let local = size;
  if (size > maxLocal) {
    const minLocal = Math.floor(((usable - 12) * 32) / 255) - 23;
    const k = minLocal + ((size - minLocal) % (usable - 4));
    local = k <= maxLocal ? k : minLocal;
  }
  if (at + local > page.byteLength) throw new MalformedDatabaseError('cell past the end of its page');
  if (local === size) return page.subarray(at, at + size);
  const out = new Uint8Array(size);
  out.set(page.subarray(at, at + local));
  let filled = local;
  let next = readU32(page, at + local);
  let hops = 0;
  while (filled < size) {
    if (next === 0 || ++hops > MAX_PAGES_VISITED) throw new MalformedDatabaseError('broken overflow chain');
    const ov = getPage(next);
    if (!ov) throw new MalformedDatabaseError('overflow page past the end');
    const n = Math.min(size - filled, usable - 4);
    out.set(ov.subarray(4, 4 + n), filled);
    filled += n;
    next = readU32(ov, 0);
  }
  return out;
}

type SqlValue = null | number | string | Uint8Array;

/** Bytes of a value of serial type `t`. */
function serialTypeLength(t: number): number {
  if (t === 0 || t === 8 || t === 9) return 0;
  if (t >= 1 && t <= 6) return INT_LENGTHS[t]!;
  if (t === 7) return 8;
  if (t >= 12) return Math.floor((t - 12) / 2);
  throw new MalformedDatabaseError(`reserved serial type ${t}`);
}

const INT_LENGTHS = [0, 1, 2, 3, 4, 6, 8];

/** The first `want` column values of a record. */
function parseRecord(rec: Uint8Array, want: number): SqlValue[] {
  const hdrSize = readVarint(rec, 0);
  let h = varintLength;
  let body = hdrSize;
  const out: SqlValue[] = [];
  while (h < hdrSize && out.length < want) {
    const t = readVarint(rec, h);
    h += varintLength;
    const len = serialTypeLength(t);
    if (body + len > rec.byteLength) throw new MalformedDatabaseError('record value past its payload');
    if (t === 0) out.push(null);
    else if (t === 8) out.push(0);
    else if (t === 9) out.push(1);
    else if (t <= 6) out.push(readInt(rec, body, len));
    else if (t === 7) out.push(new DataView(rec.buffer, rec.byteOffset + body, 8).getFloat64(0));
    else if (t % 2 === 1) out.push(utf8(rec, body, body + len));
    else out.push(rec.subarray(body, body + len));
    body += len;
  }
  return out;
}

/** A big-endian two's-complement integer of `len` bytes at `at`; MalformedDatabaseError beyond ±(2^53 − 1). */
function readInt(b: Uint8Array, at: number, len: number): number {
  const first = b[at]!;
  // Exact while |v| < 2^53; once past it, |v| only grows (each step is v × 256 + a byte), so the check below sees it.
  let v = first >= 0x80 ? first - 0x100 : first;
  for (let i = 1; i < len; i++) v = v * 256 + b[at + i]!;
  if (!Number.isSafeInteger(v)) throw new MalformedDatabaseError('integer out of range');
  return v;
}

/** Length of the varint read by the latest {@link readVarint}. */
let varintLength = 0;

/**
 * The varint at `at` as a number (sizes and serial types: a value past
 * 2^53 − 1 is malformed here); its length is left in {@link varintLength}.
 */
function readVarint(b: Uint8Array, at: number): number {
  let v = 0;
  for (let i = 0; i < 9; i++) {
    if (at + i >= b.byteLength) throw new MalformedDatabaseError('varint past the end');
    const byte = b[at + i]!;
    if (i === 8) {
      v = v * 256 + byte;
      varintLength = 9;
    } else {
      v = v * 128 + (byte & 0x7f);
      if ((byte & 0x80) !== 0) continue;
      varintLength = i + 1;
    }
    if (!Number.isSafeInteger(v)) throw new MalformedDatabaseError('varint out of range');
    return v;
  }
  throw new MalformedDatabaseError('unreachable');
}

/** Length of the varint at `at` (any 64-bit value: rowids). */
function varintSize(b: Uint8Array, at: number): number {
  for (let i = 0; i < 9; i++) {
    if (at + i >= b.byteLength) throw new MalformedDatabaseError('varint past the end');
    if (i === 8 || (b[at + i]! & 0x80) === 0) return i + 1;
  }
  throw new MalformedDatabaseError('unreachable');
}

function readU16(b: Uint8Array, at: number): number {
  if (at + 2 > b.byteLength) throw new MalformedDatabaseError('read past the end of a page');
  return (b[at]! << 8) | b[at + 1]!;
}

function readU32(b: Uint8Array, at: number): number {
  if (at + 4 > b.byteLength) throw new MalformedDatabaseError('read past the end of a page');
  return ((b[at]! << 24) >>> 0) + (b[at + 1]! << 16) + (b[at + 2]! << 8) + b[at + 3]!;
}
