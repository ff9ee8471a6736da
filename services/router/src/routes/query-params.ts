import { DomicileError } from '@domicile/errors';

/** Reads an optional integer query parameter within bounds; anything else → BAD_REQUEST naming it. */
export function intParam(q: Record<string, unknown>, name: string, def: number, min: number, max: number): number {
  const v = q[name];
  if (v === undefined || v === '') return def;
  if (typeof v !== 'string' || !/^\d{1,9}$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new DomicileError('BAD_REQUEST', `${name} must be an integer from ${min} to ${max}`, { field: name });
  }
  return Number(v);
}

/** Reads an optional string query parameter; a repeated parameter → BAD_REQUEST. */
export function strParam(q: Record<string, unknown>, name: string): string | undefined {
  const v = q[name];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') throw new DomicileError('BAD_REQUEST', `${name} must be given once`, { field: name });
  return v;
}
