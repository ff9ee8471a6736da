/**
 * Wire encoding of SQL values (DESIGN §5), both directions. Parameters arrive
 * as JSON and are turned into what better-sqlite3 binds; result values leave
 * as JSON-safe wire values. Integers travel as BigInt inside the worker so an
 * INTEGER column never passes through a float.
 */
import { DomicileError } from '@domicile/errors';
import type { Params, WireValue } from './types.ts';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const INT_TEXT = /^-?[0-9]{1,20}$/;
const BASE64_TEXT = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A value better-sqlite3 can bind: null, bigint (INTEGER), number (REAL), string (TEXT), Buffer (BLOB). */
export type BindValue = null | bigint | number | string | Buffer;

/** Parameters in the shape better-sqlite3's `run/all/iterate` accept (spread an array, pass an object). */
export type BindParams = BindValue[] | Record<string, BindValue>;

/**
 * Turn one wire parameter into a bindable value. better-sqlite3 binds every JS
 * number as REAL, so safe integers become BigInt and are stored as INTEGER
 * even in untyped columns. `name` appears in the BAD_REQUEST message.
 */
export function toBindValue(value: unknown, name: string): BindValue {
  if (value === null) return null;
  switch (typeof value) {
    case 'string':
      return value;
    case 'boolean':
      return value ? 1n : 0n;
    case 'number':
      if (!Number.isFinite(value)) throw badParam(name, 'is not a finite number');
      return Number.isSafeInteger(value) ? BigInt(value) : value;
    case 'object':
      break;
    default:
      throw badParam(name, `has unsupported type ${typeof value}`);
  }
  if (Array.isArray(value)) throw badParam(name, 'is an array; arrays are not SQL values');
  const keys = Object.keys(value as object);
  const obj = value as Record<string, unknown>;
  if (keys.length === 1 && keys[0] === 'int') {
    const text = obj.int;
    if (typeof text !== 'string' || !INT_TEXT.test(text)) throw badParam(name, '{int} must be a decimal integer string');
    const n = BigInt(text);
    if (n < INT64_MIN || n > INT64_MAX) throw badParam(name, '{int} is outside the signed 64-bit range');
    return n;
  }
  if (keys.length === 1 && keys[0] === 'base64') {
    const text = obj.base64;
    if (typeof text !== 'string' || !BASE64_TEXT.test(text)) throw badParam(name, '{base64} must be standard padded base64');
    return Buffer.from(text, 'base64');
  }
  throw badParam(name, 'is an object other than {int} or {base64}');
}

/** Turn wire parameters (array or object of names without prefix) into bindable parameters. */
export function toBindParams(params: Params | undefined): BindParams {
  if (params === undefined || params === null) return [];
  if (Array.isArray(params)) return params.map((v, i) => toBindValue(v, `params[${i}]`));
  if (typeof params !== 'object') throw new DomicileError('BAD_REQUEST', 'params must be an array or an object');
  const out: Record<string, BindValue> = {};
  for (const [k, v] of Object.entries(params)) out[k] = toBindValue(v, `params.${k}`);
  return out;
}

/**
 * Turn a value read with `safeIntegers(true)` into a wire value: integers
 * within ±(2^53-1) become numbers, larger ones `{int}`; blobs `{base64}`.
 */
export function toWireValue(value: unknown): WireValue {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') {
    return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : { int: value.toString() };
  }
  if (typeof value === 'number' || typeof value === 'string') return value;
  if (value instanceof Uint8Array) return { base64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  return String(value);
}

/**
 * Approximate JSON size in bytes of a value as read from SQLite, used to stop
 * reading rows at the result cap before they are materialized as wire values.
 */
export function estimateJsonBytes(value: unknown): number {
  if (value === null || value === undefined) return 4;
  switch (typeof value) {
    case 'bigint':
      return value >= MIN_SAFE && value <= MAX_SAFE ? 20 : 30;
    case 'number':
      return 24;
    case 'string':
      return Buffer.byteLength(value, 'utf8') + 2;
    default:
      if (value instanceof Uint8Array) return 4 * Math.ceil(value.byteLength / 3) + 13;
      return 16;
  }
}

function badParam(name: string, why: string): DomicileError {
  return new DomicileError('BAD_REQUEST', `parameter ${name} ${why}`, { parameter: name });
}
