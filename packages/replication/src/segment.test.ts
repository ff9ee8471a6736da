import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DbHashState, applyTransactionHashes } from './checksum.ts';
import { Compression, compressInlineBelow } from './compression.ts';
import { decodeSegment, encodeSegment, encodeSegmentAsync, encodeSegmentV1, SEGMENT_MAJOR, type SegmentHeader, type SegmentTransaction } from './segment.ts';

function sample(compression?: number, encode = encodeSegment): { header: SegmentHeader; txs: SegmentTransaction[]; bytes: Uint8Array } {
  const state = new DbHashState();
  for (let p = 1; p <= 5; p++) state.setPage(p, Buffer.alloc(1024, p));
  const header: SegmentHeader = { tenant: 'acme', incarnation: 'inc-1', generation: '0123456789abcdef0123', epoch: 7, pageSize: 1024, preChecksum: state.checksum, prePageCount: 5 };
  const txs: SegmentTransaction[] = [];
  for (let i = 0; i < 3; i++) {
    const pages = [{ pgno: 1, data: randomBytes(1024) }, { pgno: 6 + i, data: Buffer.alloc(1024, 'ab') }];
    const tx = { txid: 41 + i, time: 1_700_000_000_000 + i, truncateTo: 5 + i, commitSize: 6 + i, pages };
    txs.push({ ...tx, postChecksum: applyTransactionHashes(state, tx) });
  }
  return { header, txs, bytes: encode(header, txs, compression === undefined ? {} : { compression: compression as 0 }) };
}

describe.each([['format 2', encodeSegment], ['format 1 (still read)', encodeSegmentV1]] as const)('segment codec, %s', (_name, encode) => {
  it('round trips header, transactions and pages, with each codec', () => {
    for (const c of [Compression.none, Compression.brotli, Compression.deflateRaw]) {
      const { header, txs, bytes } = sample(c, encode);
      expect(Buffer.from(bytes).readUInt16BE(4)).toBe(encode === encodeSegment ? SEGMENT_MAJOR : 1);
      const d = decodeSegment(bytes);
      expect(d).toMatchObject({ ...header, minTxid: 41, maxTxid: 43, postChecksum: txs[2]!.postChecksum, postPageCount: 8 });
      d.transactions.forEach((t, i) => {
        expect(t).toMatchObject({ txid: txs[i]!.txid, time: txs[i]!.time, truncateTo: txs[i]!.truncateTo, commitSize: txs[i]!.commitSize, postChecksum: txs[i]!.postChecksum });
        expect(t.pages().map((p) => [p.pgno, Buffer.from(p.data).toString('hex')])).toEqual(txs[i]!.pages.map((p) => [p.pgno, Buffer.from(p.data).toString('hex')]));
      });
    }
  });

  it('refuses every corrupted byte and every truncation with BACKUP_INVALID', () => {
    const { bytes } = sample(undefined, encode);
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
    const bad = Buffer.from(sample(undefined, encode).bytes);
    bad.writeUInt16BE(3, 4);
    expect(() => decodeSegment(bad, 'seg-x')).toThrow(/seg-x has segment format 3\.0; this build reads major versions 1 and 2/);
  });
});

describe('segment format 2', () => {
  it('compresses consecutive images of one page together: far smaller than format 1 for one-row transactions', () => {
    const state = new DbHashState();
    const page = Buffer.alloc(4096, 0);
    state.setPage(1, page);
    const header: SegmentHeader = { tenant: 'acme', incarnation: 'inc-1', generation: '0123456789abcdef0123', epoch: 1, pageSize: 4096, preChecksum: state.checksum, prePageCount: 1 };
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
    const header: SegmentHeader = { tenant: 'acme', incarnation: 'inc-1', generation: '0123456789abcdef0123', epoch: 1, pageSize: 1024, preChecksum: state.checksum, prePageCount: 0 };
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
});
