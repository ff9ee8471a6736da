/**
 * Byte-level helpers shared by the segment and snapshot codecs: a bounds-checked
 * reader that turns every malformed input into BACKUP_INVALID, and a growable writer.
 */
import { DomicileError } from '@domicile/errors';

/** The error of a corrupt, truncated or unreadable backup object. */
export function backupInvalid(message: string, details: Record<string, unknown> = {}, cause?: unknown): DomicileError {
  return new DomicileError('BACKUP_INVALID', message, details, cause === undefined ? undefined : { cause });
}

/** Sequential big-endian reader; any read past the end is BACKUP_INVALID naming `what`. */
export class ByteReader {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  readonly #what: string;
  #pos: number;

  constructor(buf: Uint8Array, what: string, pos = 0) {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.#what = what;
    this.#pos = pos;
  }

  /** Current offset. */
  get pos(): number { return this.#pos; }
  /** Bytes left. */
  get remaining(): number { return this.#buf.byteLength - this.#pos; }

  #need(n: number, field: string): number {
    if (n < 0 || this.#pos + n > this.#buf.byteLength) throw backupInvalid(`${this.#what} is truncated (reading ${field}).`, { field });
    const at = this.#pos;
    this.#pos += n;
    return at;
  }

  u8(field: string): number { return this.#view.getUint8(this.#need(1, field)); }
  u16(field: string): number { return this.#view.getUint16(this.#need(2, field)); }
  u32(field: string): number { return this.#view.getUint32(this.#need(4, field)); }
  /** Unsigned 64-bit value that must be a safe JS integer (txids, epochs, times). */
  u53(field: string): number {
    const v = this.#view.getBigUint64(this.#need(8, field));
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw backupInvalid(`${this.#what}: ${field} out of range.`, { field });
    return Number(v);
  }
  u64(field: string): bigint { return this.#view.getBigUint64(this.#need(8, field)); }
  bytes(n: number, field: string): Uint8Array { const at = this.#need(n, field); return this.#buf.subarray(at, at + n); }
  /** Length-prefixed (u8) ASCII string. */
  str(field: string): string {
    const n = this.u8(field);
    return Buffer.from(this.bytes(n, field)).toString('latin1');
  }
}

/** Growable big-endian writer. */
export class ByteWriter {
  #buf = Buffer.allocUnsafe(256);
  #pos = 0;

  #room(n: number): number {
    if (this.#pos + n > this.#buf.length) {
      const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#pos + n));
      this.#buf.copy(next, 0, 0, this.#pos);
      this.#buf = next;
    }
    const at = this.#pos;
    this.#pos += n;
    return at;
  }

  get length(): number { return this.#pos; }
  u8(v: number): this { const at = this.#room(1); this.#buf.writeUInt8(v, at); return this; }
  u16(v: number): this { const at = this.#room(2); this.#buf.writeUInt16BE(v, at); return this; }
  u32(v: number): this { const at = this.#room(4); this.#buf.writeUInt32BE(v >>> 0, at); return this; }
  u53(v: number): this { const at = this.#room(8); this.#buf.writeBigUInt64BE(BigInt(v), at); return this; }
  u64(v: bigint): this { const at = this.#room(8); this.#buf.writeBigUInt64BE(v, at); return this; }
  bytes(b: Uint8Array): this { const at = this.#room(b.byteLength); this.#buf.set(b, at); return this; }
  str(s: string): this {
    const b = Buffer.from(s, 'latin1');
    if (b.length > 255) throw new RangeError('string longer than 255 bytes');
    return this.u8(b.length).bytes(b);
  }
  /** Patch a u32 written earlier (e.g. a length known only later). */
  setU32(at: number, v: number): void { this.#buf.writeUInt32BE(v >>> 0, at); }
  /** The bytes written so far (a view; copy before writing more if kept). */
  view(): Buffer { return this.#buf.subarray(0, this.#pos); }
}
