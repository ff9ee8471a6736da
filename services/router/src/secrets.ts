import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Paths of the secrets the embedded default generates into its data dir. */
export function secretFiles(dataDir: string): { adminToken: string; tokenSecret: string; clusterSecret: string } {
  return {
    adminToken: path.join(dataDir, 'admin-token'),
    tokenSecret: path.join(dataDir, 'token-secret'),
    clusterSecret: path.join(dataDir, 'cluster-secret'),
  };
}

/**
 * Reads a generated secret, creating it (mode 0600, exclusive create so two starting processes
 * agree) on first use. Only the embedded default generates secrets; a cluster requires them.
 */
export function readOrCreateSecret(file: string, make: () => string): { value: string; created: boolean } {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    return { value: readFileSync(file, 'utf8').trim(), created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  try {
    writeFileSync(file, `${make()}\n`, { mode: 0o600, flag: 'wx' });
    return { value: readFileSync(file, 'utf8').trim(), created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { value: readFileSync(file, 'utf8').trim(), created: false };
  }
}

/** A fresh random secret (base64url, 32 bytes). */
export const randomSecret = (): string => randomBytes(32).toString('base64url');
