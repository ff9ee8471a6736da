/**
 * Object keys of a tenant's backups (DESIGN §8). Every key names the tenant,
 * its incarnation, the generation and the generation's epoch; zero-padded hex
 * makes lexical (S3 listing) order equal epoch, then generation, then txid order:
 *
 *   tenants/<tenant>/<incarnation>/generations/<epoch hex16>-<generation>/snapshots/<txid hex16>.snap
 *   tenants/<tenant>/<incarnation>/generations/<epoch hex16>-<generation>/segments/<min hex16>-<max hex16>.seg
 */
import { randomBytes } from 'node:crypto';
import { DomicileError } from '@domicile/errors';

/** Tenant ids (DESIGN §1). */
export const TENANT_ID_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Incarnations: random ids such as UUIDs. */
export const INCARNATION_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** Generation ids from {@link newGenerationId}: 12 hex digits of creation time (ms) + 8 random. */
export const GENERATION_RE = /^[0-9a-f]{20}$/;

/** One generation of one tenant incarnation. */
export interface GenerationRef {
  tenant: string;
  incarnation: string;
  epoch: number;
  generation: string;
}

/** What a parsed key names. */
export type ParsedKey =
  | (GenerationRef & { kind: 'snapshot'; txid: number })
  | (GenerationRef & { kind: 'segment'; minTxid: number; maxTxid: number });

/** A fresh generation id; ids sort by creation time. */
export function newGenerationId(now = Date.now()): string {
  return now.toString(16).padStart(12, '0').slice(-12) + randomBytes(4).toString('hex');
}

function bad(message: string, details: Record<string, unknown>): DomicileError {
  return new DomicileError('BAD_REQUEST', message, details);
}

function checkTenant(tenant: string): void {
  if (typeof tenant !== 'string' || !TENANT_ID_RE.test(tenant)) throw new DomicileError('INVALID_TENANT_ID', `Invalid tenant id ${JSON.stringify(tenant)}.`, { tenant });
}

function checkRef(ref: GenerationRef): void {
  checkTenant(ref.tenant);
  if (typeof ref.incarnation !== 'string' || !INCARNATION_RE.test(ref.incarnation)) throw bad(`Invalid incarnation ${JSON.stringify(ref.incarnation)}.`, { incarnation: ref.incarnation });
  if (typeof ref.generation !== 'string' || !GENERATION_RE.test(ref.generation)) throw bad(`Invalid generation id ${JSON.stringify(ref.generation)}.`, { generation: ref.generation });
  checkCounter(ref.epoch, 'epoch');
}

function checkCounter(v: number, name: string): void {
  if (!Number.isSafeInteger(v) || v < 0) throw bad(`Invalid ${name} ${String(v)}.`, { [name]: v });
}

/** 16 lowercase hex digits. */
export function hex16(v: number): string {
  return v.toString(16).padStart(16, '0');
}

/** `tenants/<tenant>/`: every object of every incarnation of a tenant (erase). */
export function tenantPrefix(tenant: string): string {
  checkTenant(tenant);
  return `tenants/${tenant}/`;
}

/** `tenants/<tenant>/<incarnation>/generations/`: every generation of one incarnation. */
export function generationsPrefix(tenant: string, incarnation: string): string {
  checkTenant(tenant);
  if (typeof incarnation !== 'string' || !INCARNATION_RE.test(incarnation)) throw bad(`Invalid incarnation ${JSON.stringify(incarnation)}.`, { incarnation });
  return `tenants/${tenant}/${incarnation}/generations/`;
}

/** Prefix of every object of one generation (ends with `/`). */
export function generationPrefix(ref: GenerationRef): string {
  checkRef(ref);
  return `${generationsPrefix(ref.tenant, ref.incarnation)}${hex16(ref.epoch)}-${ref.generation}/`;
}

/** Key of the snapshot of `ref` at `txid`. */
export function snapshotKey(ref: GenerationRef, txid: number): string {
  checkCounter(txid, 'txid');
  return `${generationPrefix(ref)}snapshots/${hex16(txid)}.snap`;
}

/** Key of the segment of `ref` holding txids `minTxid..maxTxid`. */
export function segmentKey(ref: GenerationRef, minTxid: number, maxTxid: number): string {
  checkCounter(minTxid, 'minTxid');
  checkCounter(maxTxid, 'maxTxid');
  if (maxTxid < minTxid) throw bad('maxTxid below minTxid.', { minTxid, maxTxid });
  return `${generationPrefix(ref)}segments/${hex16(minTxid)}-${hex16(maxTxid)}.seg`;
}

const KEY_RE = /^tenants\/([^/]+)\/([^/]+)\/generations\/([0-9a-f]{16})-([^/]+)\/(?:snapshots\/([0-9a-f]{16})\.snap|segments\/([0-9a-f]{16})-([0-9a-f]{16})\.seg)$/;

/**
 * Parse a backup object key, validating every part (tenant id, incarnation,
 * generation, counters within JS safe integers). Anything else — other
 * layouts, `..`, upper-case hex, extra segments — is BAD_REQUEST.
 */
export function parseKey(key: string): ParsedKey {
  const m = typeof key === 'string' ? KEY_RE.exec(key) : null;
  if (!m) throw bad(`Not a Domicile backup key: ${JSON.stringify(key)}.`, { key });
  const [, tenant, incarnation, epochHex, generation, snapHex, minHex, maxHex] = m;
  const ref: GenerationRef = { tenant: tenant!, incarnation: incarnation!, epoch: parseHex(epochHex!, key), generation: generation! };
  checkRef(ref);
  if (snapHex !== undefined) return { kind: 'snapshot', ...ref, txid: parseHex(snapHex, key) };
  const minTxid = parseHex(minHex!, key);
  const maxTxid = parseHex(maxHex!, key);
  if (maxTxid < minTxid) throw bad(`Segment key with maxTxid below minTxid: ${JSON.stringify(key)}.`, { key });
  return { kind: 'segment', ...ref, minTxid, maxTxid };
}

function parseHex(h: string, key: string): number {
  const v = Number.parseInt(h, 16);
  if (!Number.isSafeInteger(v)) throw bad(`Counter out of range in ${JSON.stringify(key)}.`, { key });
  return v;
}
