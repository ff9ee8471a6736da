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
