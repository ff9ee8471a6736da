import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DbHashState, applyTransactionHashes, PageHash, type PageHashId } from './checksum.ts';
import { Compression, compressInlineBelow } from './compression.ts';
import { decodeSegment, encodeSegment, encodeSegmentAsync, encodeSegmentV1, encodeSegmentV2, gatherBufferBytes, SEGMENT_IN_PLACE_BYTES, SEGMENT_MAJOR, type SegmentHeader, type SegmentTransaction } from './segment.ts';

function sample(compression?: number, encode = encodeSegment, pageHash: PageHashId = PageHash.xxh64): { header: SegmentHeader; txs: SegmentTransaction[]; bytes: Uint8Array } {
  const state = new DbHashState(64, pageHash);
  for (let p = 1; p <= 5; p++) state.setPage(p, Buffer.alloc(1024, p));
  const header: SegmentHeader = { tenant: 'acme', incarnation: 'inc-1', generation: '0123456789abcdef0123', epoch: 7, pageSize: 1024, pageHash, preChecksum: state.checksum, prePageCount: 5 };
  const txs: SegmentTransaction[] = [];
  for (let i = 0; i < 3; i++) {
    const pages = [{ pgno: 1, data: randomBytes(1024) }, { pgno: 6 + i, data: Buffer.alloc(1024, 'ab') }];
    const tx = { txid: 41 + i, time: 1_700_000_000_000 + i, truncateTo: 5 + i, commitSize: 6 + i, pages };
    txs.push({ ...tx, postChecksum: applyTransactionHashes(state, tx) });
  }
  return { header, txs, bytes: encode(header, txs, compression === undefined ? {} : { compression: compression as 0 }) };
}

describe.each([
  ['format 3, xxh64', encodeSegment, 3, PageHash.xxh64],
  ['format 3, sha256 (a generation begun before format 3)', encodeSegment, 3, PageHash.sha256],
  ['format 2 (still read)', encodeSegmentV2, 2, PageHash.sha256],
  ['format 1 (still read)', encodeSegmentV1, 1, PageHash.sha256],
] as const)('segment codec, %s', (_name, encode, major, pageHash) => {
  it('round trips header, transactions and pages, with each codec', () => {
    for (const c of [Compression.none, Compression.brotli, Compression.deflateRaw]) {
      const { header, txs, bytes } = sample(c, encode, pageHash);
      expect(Buffer.from(bytes).readUInt16BE(4)).toBe(major);
      const d = decodeSegment(bytes);
      expect(d).toMatchObject({ ...header, major, minTxid: 41, maxTxid: 43, postChecksum: txs[2]!.postChecksum, postPageCount: 8 });
      d.transactions.forEach((t, i) => {
        expect(t).toMatchObject({ txid: txs[i]!.txid, time: txs[i]!.time, truncateTo: txs[i]!.truncateTo, commitSize: txs[i]!.commitSize, postChecksum: txs[i]!.postChecksum });
        expect(t.pages().map((p) => [p.pgno, Buffer.from(p.data).toString('hex')])).toEqual(txs[i]!.pages.map((p) => [p.pgno, Buffer.from(p.data).toString('hex')]));
      });
    }
  });

  it('refuses every corrupted byte and every truncation with BACKUP_INVALID', () => {
    const { bytes } = sample(undefined, encode, pageHash);
    for (let i = 0; i < bytes.length; i++) {
      const bad = Buffer.from(bytes);
      bad[i]! ^= 1 << (i % 8);
      expect(() => { const d = decodeSegment(bad); d.transactions.forEach((t) => t.pages()); }, `byte ${i}`).toThrow(expect.objectContaining({ code: 'BACKUP_INVALID' }));
    }
    for (let n = 0; n < bytes.length; n += 7) {
      expect(() => decodeSegment(bytes.subarray(0, n))).toThrow(expect.objectContaining({ code: 'BACKUP_INVALID' }));
    }
  });

  it('names an unknown major version in a clear error', () => {
    const bad = Buffer.from(sample(undefined, encode, pageHash).bytes);
    bad.writeUInt16BE(4, 4);
    expect(() => decodeSegment(bad, 'seg-x')).toThrow(/seg-x has segment format 4\.0; this build reads major versions 1 to 3/);
  });
});

describe('segment format 3: the page hash field', () => {
  /** `bytes` with the page hash field set to `id` and the trailer re-sealed (an object of a future build). */
  function withPageHash(bytes: Uint8Array, id: number): Buffer {
    const body = Buffer.from(bytes.subarray(0, bytes.byteLength - 32));
    body.writeUInt16BE(id, 26);
    return Buffer.concat([body, createHash('sha256').update(body).digest()]);
  }

  it('is written at offset 26 and an unknown one is BACKUP_INVALID, named', () => {
    const { bytes } = sample(undefined, encodeSegment, PageHash.xxh64);
    expect(Buffer.from(bytes).readUInt16BE(26)).toBe(PageHash.xxh64);
    expect(decodeSegment(withPageHash(bytes, PageHash.sha256)).pageHash).toBe(PageHash.sha256);
    expect(() => decodeSegment(withPageHash(bytes, 9), 'seg-y')).toThrow(expect.objectContaining({ code: 'BACKUP_INVALID', message: 'seg-y: unknown page hash 9.' }));
  });

  it('is read as SHA-256 in formats 1 and 2, whatever the reserved field holds', () => {
    const { bytes } = sample(undefined, encodeSegmentV2, PageHash.sha256);
    expect(decodeSegment(withPageHash(bytes, 5)).pageHash).toBe(PageHash.sha256);
    expect(() => encodeSegmentV2(sample(undefined, encodeSegment, PageHash.xxh64).header, sample().txs)).toThrow(RangeError);
  });
});

describe('segment formats 2–3', () => {
  it('compresses consecutive images of one page together: far smaller than format 1 for one-row transactions', () => {
    const state = new DbHashState(64, PageHash.sha256);
    const page = Buffer.alloc(4096, 0);
    state.setPage(1, page);
    const header: SegmentHeader = { tenant: 'acme', incarnation: 'inc-1', generation: '0123456789abcdef0123', epoch: 1, pageSize: 4096, pageHash: state.pageHash, preChecksum: state.checksum, prePageCount: 1 };
    const txs: SegmentTransaction[] = [];
    for (let i = 0; i < 200; i++) {
      const data = Buffer.from(page);
      randomBytes(40).copy(data, 100 + i * 19); // one new "row" per transaction
      data.copy(page);
      const tx = { txid: 1 + i, time: 1_700_000_000_000 + i, truncateTo: 1, commitSize: 1, pages: [{ pgno: 1, data }] };
      txs.push({ ...tx, postChecksum: applyTransactionHashes(state, tx) });
    }
    const v2 = encodeSegment(header, txs);
    const v1 = encodeSegmentV1(header, txs);
    expect(v2.byteLength * 5).toBeLessThan(v1.byteLength);
    const d = decodeSegment(v2);
    expect(Buffer.from(d.transactions[137]!.pages()[0]!.data).equals(Buffer.from(txs[137]!.pages[0]!.data))).toBe(true);
  });
});

describe('the reused page-data buffer (one per thread)', () => {
  /** A segment of `n` random pages whose content says which segment it is. */
  function randomSegment(n: number): { header: SegmentHeader; txs: SegmentTransaction[] } {
    const state = new DbHashState();
    const header: SegmentHeader = { tenant: 'acme', incarnation: 'inc-1', generation: '0123456789abcdef0123', epoch: 1, pageSize: 1024, pageHash: state.pageHash, preChecksum: state.checksum, prePageCount: 0 };
    const pages = Array.from({ length: n }, (_, i) => ({ pgno: i + 1, data: randomBytes(1024) }));
    const tx = { txid: 1, time: 1_700_000_000_000, truncateTo: 0, commitSize: n, pages };
    return { header, txs: [{ ...tx, postChecksum: applyTransactionHashes(state, tx) }] };
  }
  const pagesOf = (bytes: Uint8Array) => decodeSegment(bytes).transactions[0]!.pages().map((p) => Buffer.from(p.data).toString('hex'));
  const expected = (s: { txs: SegmentTransaction[] }) => s.txs[0]!.pages.map((p) => Buffer.from(p.data).toString('hex'));

  it('keeps segments encoded one after another, growing, shrinking and interleaved on one thread, each its own', async () => {
    // As on the shipper thread: small inputs compressed in place, so the gathered data is reused.
    compressInlineBelow(1 << 20);
    try {
      for (const compression of [Compression.brotli, Compression.deflateRaw, Compression.none]) {
        const segs = [3, 40, 2, 200, 7].map(randomSegment);
        // All started before any is awaited: a reuse while a compressor still reads would mix them up.
        const encoded = await Promise.all(segs.map((s) => encodeSegmentAsync(s.header, s.txs, { compression })));
        encoded.forEach((bytes, i) => expect(pagesOf(bytes), `${compression} #${i}`).toEqual(expected(segs[i]!)));
        // The synchronous encoder shares the buffer.
        const sync = segs.map((s) => encodeSegment(s.header, s.txs, { compression }));
        sync.forEach((bytes, i) => expect(pagesOf(bytes), `sync ${compression} #${i}`).toEqual(expected(segs[i]!)));
      }
      // Above the in-place size the pool compresses while this thread goes on: never the shared buffer.
      compressInlineBelow(1024);
      const segs = [30, 5, 60].map(randomSegment);
      const encoded = await Promise.all(segs.map((s) => encodeSegmentAsync(s.header, s.txs)));
      encoded.forEach((bytes, i) => expect(pagesOf(bytes), `pool #${i}`).toEqual(expected(segs[i]!)));
    } finally {
      compressInlineBelow(0);
    }
  });

  it('gathers a busy tenant\'s segment in the reused buffer, and nothing over SEGMENT_IN_PLACE_BYTES', async () => {
    // As the shipper thread is set up (shipper-worker.ts).
    compressInlineBelow(SEGMENT_IN_PLACE_BYTES + 1);
    try {
      // 500 ms of a tenant committing 1,000 one-row transactions a second: two 4 KiB page images each (~4.1 MB),
      // with room for twice that (a pass that waited longer, B-tree splits: the rate varies pass by pass).
      const busy = 2 * 500 * 2 * (4 + 4096);
      expect(busy).toBeLessThanOrEqual(SEGMENT_IN_PLACE_BYTES);
      const pages = Math.ceil(busy / (4 + 1024));
      const s = randomSegment(pages);
      expect(pagesOf(await encodeSegmentAsync(s.header, s.txs))).toEqual(expected(s));
      const kept = gatherBufferBytes();
      expect(kept).toBeGreaterThanOrEqual(pages * (4 + 1024));
      expect(kept).toBeLessThanOrEqual(SEGMENT_IN_PLACE_BYTES);
      // Larger page data gets a buffer of its own (and the pool): the reused one neither grows past the limit nor is used.
      const big = randomSegment(Math.ceil(SEGMENT_IN_PLACE_BYTES / (4 + 1024)) + 1);
      expect(pagesOf(await encodeSegmentAsync(big.header, big.txs))).toEqual(expected(big));
      expect(gatherBufferBytes()).toBe(kept);
    } finally {
      compressInlineBelow(0);
    }
  });
});
