import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EmbeddedDirectory } from '../embedded/embedded-directory.ts';

/** An embedded directory in a temp dir, for tests of the in-memory membership. */
export function tempEmbeddedDirectory(): { directory: EmbeddedDirectory; cleanup: () => Promise<void> } {
  const dir = mkdtempSync(path.join(tmpdir(), 'domicile-membership-'));
  const directory = new EmbeddedDirectory(path.join(dir, 'directory.db'));
  return { directory, cleanup: async () => { await directory.close(); rmSync(dir, { recursive: true, force: true }); } };
}
