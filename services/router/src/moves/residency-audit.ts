/**
 * The residency audit (DESIGN §3 invariant 3, `GET /v1/audit/residency`):
 * walks every local node's shard directory and lists every region's bucket,
 * adds up each tenant's stored bytes by region (files: shard, -wal, -shm,
 * partial move copies; bucket objects: snapshots and segments of every
 * incarnation), and reports every byte stored in a region the tenant's
 * residency does not allow. Bytes of ids the directory does not know are
 * reported as orphans (debris of an erase or a crash), not as violations.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { TenantRecord } from '@domicile/directory';
import { findResidency } from '@domicile/policy';
import { parseKey } from '@domicile/replication';
import type { Runtime } from '../runtime.ts';

/** Stored bytes of one tenant in one region. */
export interface RegionBytes {
  files: number;
  fileBytes: number;
  objects: number;
  objectBytes: number;
}

/** One tenant's line of the audit. */
export interface TenantResidency {
  tenant: string;
  residency: string | null;
  region: string | null;
  byRegion: Record<string, RegionBytes>;
  /** Files and objects together, per region. */
  bytesByRegion: Record<string, number>;
}

/** Bytes in a region the residency does not allow. */
export interface ResidencyViolation {
  tenant: string;
  residency: string;
  region: string;
  allowed: string[];
  fileBytes: number;
  objectBytes: number;
  message: string;
}

/** `GET /v1/audit/residency`. */
export interface ResidencyReport {
  checkedAt: string;
  regions: Array<{ region: string; shardDir: string | null; bucket: string | null }>;
  tenants: TenantResidency[];
  violations: ResidencyViolation[];
  /** Ids with stored bytes and no directory record. */
  orphans: TenantResidency[];
}

const SHARD_FILE = /^([a-z0-9][a-z0-9_-]{0,62})\.db(?:-wal|-shm|-journal|\.move-[^/]+)?$/;

export async function residencyAudit(rt: Runtime): Promise<ResidencyReport> {
  const records = new Map<string, TenantRecord>();
  let cursor: string | undefined;
  do {
    const page = await rt.directory.list({ limit: 1000, ...(cursor ? { cursor } : {}) });
    for (const t of page.tenants) records.set(t.id, t);
    cursor = page.nextCursor;
  } while (cursor);

  const lines = new Map<string, TenantResidency>();
  const line = (tenant: string, region: string): RegionBytes => {
    let l = lines.get(tenant);
    if (!l) {
      const r = records.get(tenant);
      l = { tenant, residency: r?.residency ?? null, region: r?.region ?? null, byRegion: {}, bytesByRegion: {} };
      lines.set(tenant, l);
    }
    return (l.byRegion[region] ??= { files: 0, fileBytes: 0, objects: 0, objectBytes: 0 });
  };
  // Every tenant of the directory appears, with or without bytes.
  for (const t of records.values()) line(t.id, t.region);

  const regions: ResidencyReport['regions'] = [];
  for (const region of rt.policy.regionOrder) {
    const node = rt.nodeForRegion(region);
    const bucket = rt.buckets.find((b) => b.region === region);
    regions.push({ region, shardDir: node ? path.join(node.dir, 'shards') : null, bucket: bucket ? bucket.store.describe() : null });
    if (node) {
      for (const f of await walk(path.join(node.dir, 'shards'))) {
        const m = SHARD_FILE.exec(path.basename(f.path));
        if (!m) continue;
        const b = line(m[1]!, region);
        b.files++;
        b.fileBytes += f.size;
      }
    }
    if (bucket) {
      for await (const e of bucket.store.list('tenants/')) {
        let tenant: string;
        try { tenant = parseKey(e.key).tenant; } catch { tenant = e.key.split('/')[1] ?? ''; }
        if (!tenant) continue;
        const b = line(tenant, region);
        b.objects++;
        b.objectBytes += e.size;
      }
    }
  }

  const tenants: TenantResidency[] = [];
  const orphans: TenantResidency[] = [];
  const violations: ResidencyViolation[] = [];
  for (const l of [...lines.values()].sort((a, b) => a.tenant.localeCompare(b.tenant))) {
    // Drop the empty placeholder region of a tenant that has bytes elsewhere only when it is truly empty.
    for (const [r, b] of Object.entries(l.byRegion)) if (b.files === 0 && b.objects === 0 && r !== l.region) delete l.byRegion[r];
    for (const [r, b] of Object.entries(l.byRegion)) l.bytesByRegion[r] = b.fileBytes + b.objectBytes;
    const rec = records.get(l.tenant);
    if (!rec) { orphans.push(l); continue; }
    tenants.push(l);
    const allowed = findResidency(rt.policy, rec.residency)?.regions ?? [];
    for (const [region, b] of Object.entries(l.byRegion)) {
      if (allowed.includes(region) || (b.fileBytes === 0 && b.objectBytes === 0 && b.files === 0 && b.objects === 0)) continue;
      violations.push({
        tenant: l.tenant, residency: rec.residency, region, allowed: [...allowed], fileBytes: b.fileBytes, objectBytes: b.objectBytes,
        message: `${b.fileBytes + b.objectBytes} bytes (${b.files} files, ${b.objects} bucket objects) in ${region}; residency "${rec.residency}" allows ${allowed.join(', ') || 'no region'}`,
      });
    }
  }
  return { checkedAt: new Date().toISOString(), regions, tenants, violations, orphans };
}

async function walk(dir: string): Promise<Array<{ path: string; size: number }>> {
  const out: Array<{ path: string; size: number }> = [];
  let entries;
  try { entries = await readdir(dir, { withFileTypes: true }); } catch { return out; }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else if (e.isFile()) {
      try { out.push({ path: p, size: (await stat(p)).size }); } catch { /* deleted meanwhile */ }
    }
  }
  return out;
}
