import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Compression, compress, compressAsync, compressInlineBelow, decompress, decompressAsync } from './compression.ts';

afterEach(() => compressInlineBelow(0));

/** Order of "the promise settled" against a setImmediate queued just before the call. */
async function settlesBeforeImmediate(run: () => Promise<unknown>): Promise<boolean> {
  const order: string[] = [];
  setImmediate(() => order.push('immediate'));
  await run();
  order.push('settled');
  await new Promise((r) => setImmediate(r));
  return order[0] === 'settled';
}

describe('compression', () => {
  it('round-trips every codec at small and large sizes, sync and async', async () => {
    // 9 MiB + 3: over decompressAsync's former 8 MiB output chunk (its output is one buffer now).
    for (const size of [1, 4096, 65_519, 65_520, 65_536, 70_000, 300_000, 2_100_000, (9 << 20) + 3]) {
      const data = randomBytes(size);
      for (const id of [Compression.brotli, Compression.deflateRaw, Compression.none]) {
        expect(Buffer.from(decompress(id, compress(id, data), size, 'x')).equals(data), `${id}/${size}`).toBe(true);
        expect(Buffer.from(await decompressAsync(id, await compressAsync(id, data), size, 'x')).equals(data), `${id}/${size} async`).toBe(true);
      }
    }
  });

  it('compresses in place below compressInlineBelow on this thread, on the libuv pool otherwise', async () => {
    const small = randomBytes(100_000);
    expect(await settlesBeforeImmediate(() => compressAsync(Compression.brotli, small))).toBe(false);
    compressInlineBelow(1 << 20);
    expect(await settlesBeforeImmediate(() => compressAsync(Compression.brotli, small))).toBe(true);
    expect(Buffer.from(await compressAsync(Compression.brotli, small)).equals(Buffer.from(compress(Compression.brotli, small)))).toBe(true);
    // At or above the bound: the pool again.
    expect(await settlesBeforeImmediate(() => compressAsync(Compression.brotli, randomBytes(1 << 20)))).toBe(false);
  });
});
