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

/** The meta row, or null when the database has no `_domicile_meta` table (or it is empty). */
export function readDomicileMeta(getPage: PageGetter): DomicileMeta | null {
  const page1 = getPage(1);
  if (!page1) return null;
  if (page1.byteLength < 100) throw new MalformedDatabaseError('page 1 too short');
  const usable = page1.byteLength - page1[20]!;
  let root = 0;
  for (const rec of scanTable(getPage, 1, usable)) {
    const values = parseRecord(rec, 4);
    if (values[0] === 'table' && values[1] === META_TABLE) {
      if (typeof values[3] !== 'number' || values[3] < 1) throw new MalformedDatabaseError('bad root page of _domicile_meta');
      root = values[3];
      break;
    }
  }
  if (root === 0) return null;
  for (const rec of scanTable(getPage, root, usable)) {
    const v = parseRecord(rec, 5);
    const [, tenant, incarnation, epoch, txid] = v;
    if (typeof tenant !== 'string' || typeof incarnation !== 'string' || typeof epoch !== 'number' || typeof txid !== 'number') {
      throw new MalformedDatabaseError('unexpected _domicile_meta row');
    }
    return { tenant, incarnation, epoch, txid };
  }
  return null;
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
        const [payloadSize, n1] = readVarint(page, at);
        at += n1;
        const [, n2] = readVarint(page, at);
        at += n2;
        yield readPayload(getPage, page, at, Number(payloadSize), usable);
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

/** The first `want` column values of a record. */
function parseRecord(rec: Uint8Array, want: number): SqlValue[] {
  const [hdrSize, n0] = readVarint(rec, 0);
  let h = n0;
  let body = Number(hdrSize);
  const out: SqlValue[] = [];
  while (h < Number(hdrSize) && out.length < want) {
    const [st, n] = readVarint(rec, h);
    h += n;
    const t = Number(st);
    let len: number;
    if (t === 0 || t === 8 || t === 9) len = 0;
    else if (t >= 1 && t <= 6) len = [1, 2, 3, 4, 6, 8][t - 1]!;
    else if (t === 7) len = 8;
    else if (t >= 12) len = Math.floor((t - 12) / 2);
    else throw new MalformedDatabaseError(`reserved serial type ${t}`);
    if (body + len > rec.byteLength) throw new MalformedDatabaseError('record value past its payload');
    const bytes = rec.subarray(body, body + len);
    body += len;
    if (t === 0) out.push(null);
    else if (t === 8) out.push(0);
    else if (t === 9) out.push(1);
    else if (t <= 6) out.push(readInt(bytes));
    else if (t === 7) out.push(new DataView(bytes.buffer, bytes.byteOffset, 8).getFloat64(0));
    else if (t % 2 === 1) out.push(Buffer.from(bytes).toString('utf8'));
    else out.push(bytes);
  }
  return out;
}

function readInt(b: Uint8Array): number {
  let v = BigInt.asIntN(8, BigInt(b[0]!));
  for (let i = 1; i < b.length; i++) v = (v << 8n) | BigInt(b[i]!);
  if (b.length > 1) v = BigInt.asIntN(b.length * 8, v);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new MalformedDatabaseError('integer out of range');
  return Number(v);
}

function readVarint(b: Uint8Array, at: number): [bigint, number] {
  let v = 0n;
  for (let i = 0; i < 9; i++) {
    if (at + i >= b.byteLength) throw new MalformedDatabaseError('varint past the end');
    const byte = b[at + i]!;
    if (i === 8) return [(v << 8n) | BigInt(byte), 9];
    v = (v << 7n) | BigInt(byte & 0x7f);
    if ((byte & 0x80) === 0) return [v, i + 1];
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
