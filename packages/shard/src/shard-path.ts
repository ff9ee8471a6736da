/**
 * Where a tenant's shard file lives (DESIGN §7). The 2-character hash prefix
 * keeps directories small with many tenants and does not leak ordering.
 */
import { hash } from 'node:crypto';
import { join } from 'node:path';
import { DomicileError } from '@domicile/errors';

/** The tenant id grammar of DESIGN §1. */
export const TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Throw INVALID_TENANT_ID unless `tenant` matches the grammar (defence in depth: callers validate first). */
export function assertTenantId(tenant: string): void {
  if (typeof tenant !== 'string' || !TENANT_ID_PATTERN.test(tenant)) {
    throw new DomicileError('INVALID_TENANT_ID');
  }
}

/** `<regionDir>/shards/<2 hex chars of sha256(tenant)>/<tenant>.db`. */
export function shardPath(regionDir: string, tenant: string): string {
  assertTenantId(tenant);
  // One-shot hash: on every request's path, it allocates no Hash object.
  const prefix = hash('sha256', tenant, 'hex').slice(0, 2);
  return join(regionDir, 'shards', prefix, `${tenant}.db`);
}

/** Suffixes of the files SQLite keeps beside a shard; erase and create look at all of them. */
export const SHARD_FILE_SUFFIXES = Object.freeze(['', '-wal', '-shm', '-journal']);
