import { DomicileError } from '@domicile/errors';

/** An integer beyond ±2^53 on the wire (DESIGN §5): the decimal digits as a string. */
export interface WireInt {
  readonly int: string;
}

/** A blob on the wire (DESIGN §5): standard base64. */
export interface WireBlob {
  readonly base64: string;
}

/** A value exactly as the JSON API sends it in rows and accepts it in params. */
export type WireValue = null | number | string | WireInt | WireBlob;

/** A value as JavaScript code holds it: what `decodeValue` returns (plus booleans, which bind as 1/0). */
export type Value = null | number | string | bigint | Uint8Array | boolean;

/** Anything `query` and `batch` accept as a parameter: native values are encoded, wire values pass through. */
export type ParamValue = Value | WireValue;

/** Positional (`?`) or named (`{v: 1}` binds `:v`, `@v` and `$v`) parameters. */
export type Params = readonly ParamValue[] | Readonly<Record<string, ParamValue>>;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** Wire form of a 64-bit integer: `{int: "9223372036854775807"}`. Throws BAD_REQUEST outside SQLite's range. */
export function int(value: bigint): WireInt {
  if (typeof value !== 'bigint') throw new DomicileError('BAD_REQUEST', `int() takes a bigint, got ${typeof value}`);
  if (value < INT64_MIN || value > INT64_MAX) {
    throw new DomicileError('BAD_REQUEST', `integer ${value} is outside SQLite's 64-bit range`);
  }
  return { int: value.toString() };
}

/** Wire form of a blob: `{base64: "..."}`. */
export function blob(bytes: Uint8Array): WireBlob {
  return { base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') };
}

/**
 * Native form of a wire value: `{int}` becomes a bigint, `{base64}` a
 * Uint8Array, everything else is returned as it is. Throws INTERNAL on a shape
 * the contract does not define (the server sent something this client does not know).
 */
export function decodeValue(v: WireValue): null | number | string | bigint | Uint8Array {
  if (v === null || typeof v === 'number' || typeof v === 'string') return v;
  if (typeof v === 'object') {
    if (typeof (v as WireInt).int === 'string' && Object.keys(v).length === 1) return BigInt((v as WireInt).int);
    if (typeof (v as WireBlob).base64 === 'string' && Object.keys(v).length === 1) {
      return new Uint8Array(Buffer.from((v as WireBlob).base64, 'base64'));
    }
  }
  throw new DomicileError('INTERNAL', 'unexpected value shape in a result row', { value: v });
}

/** Every value of a result's rows decoded with `decodeValue`. */
export function decodeRows(rows: readonly (readonly WireValue[])[]): (null | number | string | bigint | Uint8Array)[][] {
  return rows.map((row) => row.map(decodeValue));
}

/**
 * Wire form of a parameter. A bigint always travels as `{int}` (the server
 * binds it as an integer whatever its size); an unsafe JS number is refused
 * because it has already lost precision.
 */
export function encodeValue(v: ParamValue): WireValue | boolean {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (Number.isInteger(v) && !Number.isSafeInteger(v)) {
      throw new DomicileError('BAD_REQUEST', `integer ${v} is beyond ±2^53 and has lost precision; pass a bigint`);
    }
    if (!Number.isFinite(v)) throw new DomicileError('BAD_REQUEST', `${v} cannot be bound`);
    return v;
  }
  if (typeof v === 'bigint') return int(v);
  if (v instanceof Uint8Array) return blob(v);
  if (typeof v === 'object' && (typeof (v as WireInt).int === 'string' || typeof (v as WireBlob).base64 === 'string')) return v;
  throw new DomicileError('BAD_REQUEST', `cannot bind a value of type ${typeof v}`);
}

/** Wire form of a whole parameter list or map. */
export function encodeParams(params: Params): (WireValue | boolean)[] | Record<string, WireValue | boolean> {
  if (Array.isArray(params)) return params.map(encodeValue);
  const out: Record<string, WireValue | boolean> = {};
  for (const [k, v] of Object.entries(params as Record<string, ParamValue>)) out[k] = encodeValue(v);
  return out;
}
