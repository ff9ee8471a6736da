import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './load-config.ts';
import { maxOpenShardsForFdLimit, parseBytes, parseConfig, parseDuration } from './config.ts';

describe('configuration', () => {
  it('has the documented defaults and is frozen', () => {
    const c = parseConfig({});
    expect(c).toMatchObject({
      host: '127.0.0.1', port: 8080, statementTimeoutMs: 5000, maxResultBytes: 16 * 1024 ** 2, maxBodyBytes: 10 * 1024 ** 2,
      maxDbBytes: 1024 ** 3, durability: 'async', snapshotIntervalMs: 3_600_000, shipIntervalMs: 500, checkpointBytes: 4 * 1024 ** 2, checkpointForceBytes: 32 * 1024 ** 2, shipConcurrency: 8, retentionMs: 7 * 86_400_000, leaseTtlMs: 5000, replication: 'on', tokenCache: 10_000,
      region: undefined, redisUrl: undefined,
    });
    expect(c.dataDir).toBe(path.resolve('data'));
    expect(c.adminTokens.size).toBe(0);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('parses sizes, durations and token lists', () => {
    expect(parseBytes('16MiB', 'X')).toBe(16 * 1024 ** 2);
    expect(parseBytes('512 kb', 'X')).toBe(512 * 1024);
    expect(parseDuration('1h', 'X')).toBe(3_600_000);
    expect(parseDuration('250ms', 'X')).toBe(250);
    const c = parseConfig({ DOMICILE_ADMIN_TOKENS: 'alice:aaaaaaaaaaaaaaaa,bob:bbbbbbbbbbbbbbbb', DOMICILE_ADMIN_TOKEN: 'cccccccccccccccc', DOMICILE_TOKEN_SECRET: `k1:${'s'.repeat(32)},k0:${'t'.repeat(32)}` });
    expect([...c.adminTokens.keys()]).toEqual(['alice', 'bob', 'admin']);
    expect(c.tokenSecrets.map((s) => s.kid)).toEqual(['k1', 'k0']);
  });

  it('forces checkpoints at 8 × DOMICILE_CHECKPOINT_BYTES unless told, never below it', () => {
    expect(parseConfig({ DOMICILE_CHECKPOINT_BYTES: '1MiB' }).checkpointForceBytes).toBe(8 * 1024 ** 2);
    expect(parseConfig({ DOMICILE_CHECKPOINT_BYTES: '1MiB', DOMICILE_CHECKPOINT_FORCE_BYTES: '1MiB' }).checkpointForceBytes).toBe(1024 ** 2);
    expect(() => parseConfig({ DOMICILE_CHECKPOINT_FORCE_BYTES: '1MiB' })).toThrow(/DOMICILE_CHECKPOINT_FORCE_BYTES \(1048576\) must be at least DOMICILE_CHECKPOINT_BYTES \(4194304\)/);
  });

  it('names every bad key at once, never echoing secrets', () => {
    let err: any;
    try {
      parseConfig({ DOMICILE_PORT: '99999', DOMICILE_DURABILITY: 'maybe', DOMICILE_MAX_BODY_BYTES: 'lots', DOMICILE_ADMIN_TOKENS: 'alice:short' });
    } catch (e) { err = e; }
    expect(err.code).toBe('BAD_REQUEST');
    expect(err.message).toContain('DOMICILE_PORT');
    expect(err.message).toContain('DOMICILE_DURABILITY');
    expect(err.message).toContain('DOMICILE_MAX_BODY_BYTES');
    expect(err.message).toContain('DOMICILE_ADMIN_TOKENS');
    expect(err.message).not.toContain('short');
  });

  it('reads the shipping concurrency and refuses one out of range', () => {
    expect(parseConfig({ DOMICILE_SHIP_CONCURRENCY: '32' }).shipConcurrency).toBe(32);
    expect(() => parseConfig({ DOMICILE_SHIP_CONCURRENCY: '0' })).toThrow(/DOMICILE_SHIP_CONCURRENCY/);
  });

  it('reads the verified-token cache size: 0 turns it off, a negative one is refused', () => {
    expect(parseConfig({ DOMICILE_TOKEN_CACHE: '0' }).tokenCache).toBe(0);
    expect(parseConfig({ DOMICILE_TOKEN_CACHE: '500' }).tokenCache).toBe(500);
    expect(() => parseConfig({ DOMICILE_TOKEN_CACHE: '-1' })).toThrow(/DOMICILE_TOKEN_CACHE/);
  });

  it('refuses a cluster without a region or its secrets', () => {
    expect(() => parseConfig({ DOMICILE_REDIS_URL: 'redis://127.0.0.1:6379' })).toThrow(/DOMICILE_REGION/);
    expect(() => parseConfig({ DOMICILE_REDIS_URL: 'redis://127.0.0.1:6379', DOMICILE_REGION: 'r' })).toThrow(/DOMICILE_TOKEN_SECRET is required/);
  });

  it('sizes the handle cache to the fd limit', () => {
    expect(maxOpenShardsForFdLimit(1_048_576)).toBe(174_762);
    expect(maxOpenShardsForFdLimit(256)).toBe(64);
  });

  it('reads a config file under the environment, which wins', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'domicile-cfg-'));
    try {
      const file = path.join(dir, 'domicile.yaml');
      writeFileSync(file, 'DOMICILE_PORT: 9000\nDOMICILE_WORKERS: 3\n');
      const c = await loadConfig({ DOMICILE_CONFIG: file, DOMICILE_PORT: '9100' });
      expect(c.port).toBe(9100);
      expect(c.workers).toBe(3);
      expect(c.sources.workers).toBe('file');
      writeFileSync(file, 'DOMICILE_PROT: 9000\n');
      await expect(loadConfig({ DOMICILE_CONFIG: file })).rejects.toThrow(/DOMICILE_PROT: unknown configuration key/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
