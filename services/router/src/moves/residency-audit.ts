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
  /**
   * What could not be read (a cluster node that did not answer, a region whose bucket this node
   * does not know): the report is incomplete and certifies nothing about those. Empty otherwise.
   */
  incomplete: string[];
  tenants: TenantResidency[];
  violations: ResidencyViolation[];
  /** Ids with stored bytes and no directory record. */
  orphans: TenantResidency[];
}

const SHARD_FILE = /^([a-z0-9][a-z0-9_-]{0,62})\.db(?:-wal|-shm|-journal|\.move-[^/]+)?$/;

/** One node's shard files of one region, summed per tenant. */
export interface NodeFiles {
  node: string;
  region: string;
  shardDir: string;
  tenants: Array<{ tenant: string; files: number; fileBytes: number }>;
}

/** The shard files (shards, -wal, -shm, partial move copies) of every node of this process. */
export async function localShardFiles(rt: Runtime): Promise<NodeFiles[]> {
  const out: NodeFiles[] = [];
  for (const node of rt.nodes.values()) {
    const shardDir = path.join(node.dir, 'shards');
    const sums = new Map<string, { tenant: string; files: number; fileBytes: number }>();
    for (const f of await walk(shardDir)) {
      const m = SHARD_FILE.exec(path.basename(f.path));
      if (!m) continue;
      const sum = sums.get(m[1]!) ?? { tenant: m[1]!, files: 0, fileBytes: 0 };
      sum.files++;
      sum.fileBytes += f.size;
      sums.set(m[1]!, sum);
    }
    out.push({ node: node.id, region: node.region, shardDir, tenants: [...sums.values()] });
  }
  return out;
}

/**
 * Every node's files: this process's, and in a cluster every other live
 * node's (`GET /internal/v1/residency/files`, cluster credential). Nodes that
 * do not answer are listed as unreachable.
 */
async function allShardFiles(rt: Runtime): Promise<{ files: NodeFiles[]; unreachable: string[] }> {
  const files = await localShardFiles(rt);
  const unreachable: string[] = [];
  if (!rt.cluster) return { files, unreachable };
  const peers = (await rt.cluster.liveNodes()).filter((n) => n.id !== rt.cluster!.id);
  await Promise.all(peers.map(async (peer) => {
    try {
      const res = await fetch(`${peer.url}/internal/v1/residency/files`, {
        headers: { authorization: `Bearer ${rt.config.clusterSecret ?? ''}` }, signal: AbortSignal.timeout(30_000),
      });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      files.push(...((await res.json()) as { nodes: NodeFiles[] }).nodes);
    } catch {
      unreachable.push(`node ${peer.id} (${peer.region}): its files were not read`);
    }
  }));
  return { files, unreachable };
}

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

  const { files, unreachable } = await allShardFiles(rt);
  const incomplete = [...unreachable];
  const regions: ResidencyReport['regions'] = [];
  for (const region of rt.policy.regionOrder) {
    const dirs = files.filter((f) => f.region === region);
    const bucket = rt.buckets.find((b) => b.region === region);
    regions.push({ region, shardDir: dirs.length === 0 ? null : dirs.map((d) => (rt.cluster ? `${d.node}:${d.shardDir}` : d.shardDir)).join(', '), bucket: bucket ? bucket.store.describe() : null });
    for (const d of dirs) {
      for (const t of d.tenants) {
        const b = line(t.tenant, region);
        b.files += t.files;
        b.fileBytes += t.fileBytes;
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
    } else if (rt.cluster) {
      incomplete.push(`region ${region}: this node knows no bucket for it (list every region in DOMICILE_BUCKETS)`);
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
  return { checkedAt: new Date().toISOString(), regions, incomplete, tenants, violations, orphans };
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
