import { describe, expect, it } from 'vitest';
import { validateKey } from '@domicile/object-store';
import { generationPrefix, newGenerationId, parseKey, segmentKey, snapshotKey, type GenerationRef } from './keys.ts';

const ref: GenerationRef = { tenant: 'acme-gmbh', incarnation: '6f1c2b1e-6f1c-4b1e-9f1c-2b1e6f1c2b1e', epoch: 3, generation: newGenerationId(1_700_000_000_000) };

describe('keys', () => {
  it('formats and parses snapshot and segment keys round trip', () => {
    const s = snapshotKey(ref, 0x1234);
    expect(s).toBe(`tenants/acme-gmbh/${ref.incarnation}/generations/0000000000000003-${ref.generation}/snapshots/0000000000001234.snap`);
    expect(parseKey(s)).toEqual({ kind: 'snapshot', ...ref, txid: 0x1234 });
    const g = segmentKey(ref, 10, 12);
    expect(parseKey(g)).toEqual({ kind: 'segment', ...ref, minTxid: 10, maxTxid: 12 });
    validateKey(s);
    validateKey(g);
  });

  it('sorts keys lexically in txid order, and generations by epoch then creation', () => {
    const keys = [segmentKey(ref, 256, 300), segmentKey(ref, 9, 20), segmentKey(ref, 21, 255)];
    expect([...keys].sort()).toEqual([segmentKey(ref, 9, 20), segmentKey(ref, 21, 255), segmentKey(ref, 256, 300)]);
    const later = { ...ref, generation: newGenerationId(1_700_000_000_001) };
    const higherEpoch = { ...ref, epoch: 16, generation: newGenerationId(1_600_000_000_000) };
    expect([generationPrefix(higherEpoch), generationPrefix(later), generationPrefix(ref)].sort())
      .toEqual([generationPrefix(ref), generationPrefix(later), generationPrefix(higherEpoch)]);
  });

  it('refuses traversal, bad tenant ids and malformed parts', () => {
    const good = snapshotKey(ref, 1);
    const bad = [
      good.replace('acme-gmbh', '..'),
      good.replace('acme-gmbh', 'Acme'),
      good.replace('acme-gmbh', 'acme/../x'),
      good.replace(ref.incarnation, '..'),
      good.replace(ref.generation, '../../etc'),
      good.replace('0000000000000001.snap', '000000000000001.snap'),
      good.replace('0000000000000001.snap', '000000000000000A.snap'),
      good.replace('0000000000000001.snap', 'ffffffffffffffff.snap'),
      `${good}/x`,
      `/${good}`,
      segmentKey(ref, 1, 2).replace('0000000000000001-0000000000000002', '0000000000000002-0000000000000001'),
      'tenants/acme/x/generations/y/z',
    ];
    for (const k of bad) expect(() => parseKey(k), k).toThrow(expect.objectContaining({ code: expect.stringMatching(/BAD_REQUEST|INVALID_TENANT_ID/) }));
    expect(() => snapshotKey({ ...ref, tenant: '../x' }, 1)).toThrow(expect.objectContaining({ code: 'INVALID_TENANT_ID' }));
    expect(() => snapshotKey({ ...ref, generation: 'x/../y' }, 1)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    expect(() => segmentKey(ref, 5, 4)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    expect(() => snapshotKey({ ...ref, epoch: -1 }, 1)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });
});
