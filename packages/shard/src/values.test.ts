import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { estimateJsonBytes, toBindParams, toBindValue, toWireValue } from './values.ts';

/** Bind through real SQLite and read back the way the worker does. */
function roundTrip(value: unknown): unknown {
  const db = new Database(':memory:');
  try {
    db.exec('CREATE TABLE t (v)');
    db.prepare('INSERT INTO t VALUES (?)').run(toBindValue(value, 'p'));
    const [v, type] = db.prepare('SELECT v, typeof(v) FROM t').safeIntegers(true).raw(true).get() as [unknown, string];
    return { wire: toWireValue(v), type };
  } finally {
    db.close();
  }
}

describe('values', () => {
  it('keeps int64 max and min exact as {int}', () => {
    expect(roundTrip({ int: '9223372036854775807' })).toEqual({ wire: { int: '9223372036854775807' }, type: 'integer' });
    expect(roundTrip({ int: '-9223372036854775808' })).toEqual({ wire: { int: '-9223372036854775808' }, type: 'integer' });
  });

  it('turns integers at the 2^53 boundary into numbers inside ±(2^53-1) and {int} beyond', () => {
    expect(roundTrip(2 ** 53 - 1)).toEqual({ wire: 2 ** 53 - 1, type: 'integer' });
    expect(roundTrip(-(2 ** 53 - 1))).toEqual({ wire: -(2 ** 53 - 1), type: 'integer' });
    expect(roundTrip({ int: '9007199254740992' })).toEqual({ wire: { int: '9007199254740992' }, type: 'integer' });
    expect(roundTrip({ int: '9007199254740993' })).toEqual({ wire: { int: '9007199254740993' }, type: 'integer' });
    expect(roundTrip({ int: '-9007199254740993' })).toEqual({ wire: { int: '-9007199254740993' }, type: 'integer' });
  });

  it('stores safe integers as INTEGER and fractions as REAL', () => {
    expect(roundTrip(42)).toEqual({ wire: 42, type: 'integer' });
    expect(roundTrip(1.5)).toEqual({ wire: 1.5, type: 'real' });
    expect(roundTrip(-0.25)).toEqual({ wire: -0.25, type: 'real' });
  });

  it('round-trips blobs, the empty blob included', () => {
    expect(roundTrip({ base64: 'AAEC/w==' })).toEqual({ wire: { base64: 'AAEC/w==' }, type: 'blob' });
    expect(roundTrip({ base64: '' })).toEqual({ wire: { base64: '' }, type: 'blob' });
  });

  it('binds booleans as 1/0, strings and null as themselves', () => {
    expect(roundTrip(true)).toEqual({ wire: 1, type: 'integer' });
    expect(roundTrip(false)).toEqual({ wire: 0, type: 'integer' });
    expect(roundTrip('héllo')).toEqual({ wire: 'héllo', type: 'text' });
    expect(roundTrip(null)).toEqual({ wire: null, type: 'null' });
  });

  it('binds named parameters written :v, @v and $v from the key v', () => {
    const db = new Database(':memory:');
    const params = toBindParams({ v: 7, w: 'x' }) as Record<string, unknown>;
    for (const sql of ['SELECT :v, :w', 'SELECT @v, @w', 'SELECT $v, $w']) {
      expect(db.prepare(sql).safeIntegers(true).raw(true).get(params)).toEqual([7n, 'x']);
    }
    db.close();
  });

  it('refuses malformed values with BAD_REQUEST naming the parameter', () => {
    const cases: [unknown, RegExp][] = [
      [[1, [2]], /params\[1\]/],
      [{ a: { nope: 1 } }, /params\.a/],
      [[{ int: '12x' }], /params\[0\].*decimal/],
      [[{ int: '9223372036854775808' }], /64-bit/],
      [[{ int: '-9223372036854775809' }], /64-bit/],
      [[{ int: 5 }], /decimal/],
      [[{ base64: 'abc' }], /base64/],
      [[{ base64: '@@@@' }], /base64/],
      [[{ int: '1', base64: '' }], /other than/],
      [[Number.NaN], /finite/],
    ];
    for (const [params, message] of cases) {
      expect(() => toBindParams(params as never)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST', message: expect.stringMatching(message) }));
    }
  });

  it('estimates blob size as its base64 JSON length', () => {
    expect(estimateJsonBytes(Buffer.alloc(300))).toBe(JSON.stringify({ base64: Buffer.alloc(300).toString('base64') }).length);
    expect(estimateJsonBytes('abc')).toBe(5);
  });
});
