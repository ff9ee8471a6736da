import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import { describeDirectoryContract } from '../directory.contract.ts';
import { EmbeddedDirectory } from './embedded-directory.ts';

describeDirectoryContract('embedded', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'domicile-dir-'));
  const directory = new EmbeddedDirectory(path.join(dir, 'directory.db'));
  return { directory, cleanup: async () => { await directory.close(); rmSync(dir, { recursive: true, force: true }); } };
});

it('embedded directory survives a reopen of its file', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'domicile-dir-'));
  try {
    const file = path.join(dir, 'directory.db');
    const a = new EmbeddedDirectory(file);
    const inc = randomUUID();
    await a.create({ id: 'acme', incarnation: inc, residency: 'eu', region: 'eu-west', node: 'n', epoch: 1, state: 'active', durability: 'sync', createdAt: '2026-01-01T00:00:00.000Z', tokensValidAfter: 0 });
    await a.close();
    const b = new EmbeddedDirectory(file);
    expect(await b.get('acme')).toMatchObject({ incarnation: inc, durability: 'sync', epoch: 1 });
    await b.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('get answers from its cache but never serves a record a write changed, nor one a caller mutated', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'domicile-dir-'));
  const d = new EmbeddedDirectory(path.join(dir, 'directory.db'), { cacheSize: 2 });
  try {
    const inc = randomUUID();
    const rec = { id: 'acme', incarnation: inc, residency: 'eu', region: 'eu-west', node: 'n', epoch: 1, state: 'active' as const, durability: 'async' as const, createdAt: '2026-01-01T00:00:00.000Z', tokensValidAfter: 0 };
    expect(await d.get('acme')).toBeUndefined(); // a cached miss…
    await d.create(rec);
    expect(await d.get('acme')).toMatchObject({ epoch: 1 }); // …dropped by the create
    const got = (await d.get('acme'))!;
    got.epoch = 99; // a caller's copy
    expect((await d.get('acme'))!.epoch).toBe(1);
    expect(await d.compareAndSet('acme', { incarnation: inc, epoch: 1 }, { epoch: 2, region: 'eu-central' })).toMatchObject({ epoch: 2 });
    expect(await d.get('acme')).toMatchObject({ epoch: 2, region: 'eu-central' });
    for (const id of ['x1', 'x2', 'x3']) await d.get(id); // evictions past cacheSize
    expect(await d.get('acme')).toMatchObject({ epoch: 2 });
    expect(await d.remove('acme', inc)).toBe(true);
    expect(await d.get('acme')).toBeUndefined();
  } finally {
    await d.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
