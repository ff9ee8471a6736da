import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DbHashState, applyTransactionHashes } from './checksum.ts';
import { Compression } from './compression.ts';
import { decodeSegment, encodeSegment, type SegmentHeader, type SegmentTransaction } from './segment.ts';

function sample(compression?: number): { header: SegmentHeader; txs: SegmentTransaction[]; bytes: Uint8Array } {
  const state = new DbHashState();
  for (let p = 1; p <= 5; p++) state.setPage(p, Buffer.alloc(1024, p));
  const header: SegmentHeader = { tenant: 'acme', incarnation: 'inc-1', generation: '0123456789abcdef0123', epoch: 7, pageSize: 1024, preChecksum: state.checksum, prePageCount: 5 };
  const txs: SegmentTransaction[] = [];
  for (let i = 0; i < 3; i++) {
    const pages = [{ pgno: 1, data: randomBytes(1024) }, { pgno: 6 + i, data: Buffer.alloc(1024, 'ab') }];
    const tx = { txid: 41 + i, time: 1_700_000_000_000 + i, truncateTo: 5 + i, commitSize: 6 + i, pages };
    txs.push({ ...tx, postChecksum: applyTransactionHashes(state, tx) });
  }
  return { header, txs, bytes: encodeSegment(header, txs, compression === undefined ? {} : { compression: compression as 0 }) };
}

describe('segment codec', () => {
  it('round trips header, transactions and pages, with each codec', () => {
    for (const c of [Compression.none, Compression.brotli, Compression.deflateRaw]) {
      const { header, txs, bytes } = sample(c);
      const d = decodeSegment(bytes);
      expect(d).toMatchObject({ ...header, minTxid: 41, maxTxid: 43, postChecksum: txs[2]!.postChecksum, postPageCount: 8 });
      d.transactions.forEach((t, i) => {
        expect(t).toMatchObject({ txid: txs[i]!.txid, time: txs[i]!.time, truncateTo: txs[i]!.truncateTo, commitSize: txs[i]!.commitSize, postChecksum: txs[i]!.postChecksum });
        expect(t.pages().map((p) => [p.pgno, Buffer.from(p.data).toString('hex')])).toEqual(txs[i]!.pages.map((p) => [p.pgno, Buffer.from(p.data).toString('hex')]));
      });
    }
  });

  it('refuses every corrupted byte and every truncation with BACKUP_INVALID', () => {
    const { bytes } = sample();
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
    const bad = Buffer.from(sample().bytes);
    bad.writeUInt16BE(2, 4);
    expect(() => decodeSegment(bad, 'seg-x')).toThrow(/seg-x has segment format 2\.0; this build reads major version 1 only/);
  });
});
