import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { shardPath } from './shard-path.ts';

describe('shardPath', () => {
  it('places the file under a 2-hex-char prefix of sha256(tenant)', () => {
    const prefix = createHash('sha256').update('acme').digest('hex').slice(0, 2);
    expect(shardPath('/data/eu-west', 'acme')).toBe(`/data/eu-west/shards/${prefix}/acme.db`);
  });

  it('refuses ids outside the grammar with INVALID_TENANT_ID', () => {
    for (const bad of ['', '../x', 'A', '-a', 'a/b', 'a'.repeat(64), 'a.db', 'é']) {
      expect(() => shardPath('/data', bad)).toThrow(expect.objectContaining({ code: 'INVALID_TENANT_ID' }));
    }
    expect(() => shardPath('/data', 'a'.repeat(63))).not.toThrow();
  });
});
