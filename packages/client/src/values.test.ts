import { describe, expect, it } from 'vitest';
import { blob, decodeRows, decodeValue, encodeValue, int } from './values.ts';

describe('wire values', () => {
  it('round-trips 64-bit integers through int() and decodeValue', () => {
    for (const n of [0n, -1n, 2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n)]) {
      const wire = JSON.parse(JSON.stringify(int(n)));
      expect(decodeValue(wire)).toBe(n);
    }
  });

  it('refuses integers outside SQLite\'s range', () => {
    expect(() => int(2n ** 63n)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });

  it('round-trips blobs through blob() and decodeValue, including a view into a larger buffer', () => {
    const big = new Uint8Array([9, 9, 0, 1, 2, 250, 255, 9]);
    const view = big.subarray(2, 7);
    const wire = JSON.parse(JSON.stringify(blob(view)));
    expect(wire).toEqual({ base64: 'AAEC+v8=' });
    expect(decodeValue(wire)).toEqual(new Uint8Array([0, 1, 2, 250, 255]));
  });

  it('passes plain JSON values through', () => {
    expect(decodeRows([[null, 1.5, 'x', { int: '12' }]])).toEqual([[null, 1.5, 'x', 12n]]);
  });

  it('rejects shapes the contract does not define', () => {
    expect(() => decodeValue({ int: '1', extra: 1 } as never)).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });

  it('refuses an unsafe JS number as a parameter instead of binding a rounded value', () => {
    expect(() => encodeValue(2 ** 53 + 2)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    expect(encodeValue(2 ** 53 - 1)).toBe(2 ** 53 - 1);
  });
});
