/**
 * `GET /v1/audit` in a cluster: every node keeps its own append-only audit
 * log (a create is recorded where it ran, a move on its source, a failover
 * on the node that took over), so the answering node merges the live nodes'
 * logs, newest first. The cursor is per node (`{node: seq}`, base64url JSON):
 * a page takes the newest `limit` events across nodes and each node's cursor
 * moves past the ones taken. A node that does not answer is named in
 * `incomplete` (its events are on its disk, not lost, and appear once it is
 * back); a node that left the cluster for good takes its log with it.
 */
import type { FastifyRequest } from 'fastify';
import { DomicileError } from '@domicile/errors';
import type { AuditEvent } from '../audit/audit-log.ts';
import type { Runtime } from '../runtime.ts';
import type { ClusterNode } from './cluster-node.ts';
import { FORWARDED_BY } from './owner-routing.ts';

/** An event with the node whose log holds it. */
export type ClusterAuditEvent = AuditEvent & { node: string };

/** `seq` below which a node's next page starts; 0: that node has nothing more. */
type Cursor = Record<string, number>;

function decodeCursor(s: string | undefined): Cursor {
  if (s === undefined) return {};
  try {
    const c = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as unknown;
    if (c && typeof c === 'object' && !Array.isArray(c) && Object.values(c).every((v) => Number.isSafeInteger(v) && (v as number) >= 0)) return c as Cursor;
  } catch { /* fall through */ }
  throw new DomicileError('BAD_REQUEST', 'cursor is not valid', { field: 'cursor' });
}

/** One page of the merged log. */
export async function clusterAudit(rt: Runtime, cluster: ClusterNode, request: FastifyRequest, q: { tenant?: string; limit: number; cursor?: string }): Promise<{ events: ClusterAuditEvent[]; nextCursor: string | null; incomplete: string[] }> {
  const cursor = decodeCursor(q.cursor);
  const nodes = await cluster.liveNodes();
  const incomplete: string[] = [];
  const pages = await Promise.all(nodes.map(async (n) => {
    const before = cursor[n.id];
    if (before === 0) return { node: n.id, events: [] as AuditEvent[], more: false };
    const local = { limit: q.limit, ...(q.tenant ? { tenant: q.tenant } : {}), ...(before !== undefined ? { cursor: String(before) } : {}) };
    if (n.id === cluster.id) {
      const p = rt.audit.list(local);
      return { node: n.id, events: p.events, more: p.nextCursor !== undefined };
    }
    const qs = new URLSearchParams({ limit: String(q.limit), ...(q.tenant ? { tenant: q.tenant } : {}), ...(before !== undefined ? { cursor: String(before) } : {}) });
    try {
      const res = await fetch(`${n.url}/v1/audit?${qs}`, {
        headers: { authorization: String(request.headers.authorization ?? ''), [FORWARDED_BY]: cluster.id }, signal: AbortSignal.timeout(10_000),
      });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      const p = (await res.json()) as { events: AuditEvent[]; nextCursor: string | null };
      return { node: n.id, events: p.events, more: p.nextCursor !== null };
    } catch {
      incomplete.push(`node ${n.id} (${n.region}): its audit log was not read`);
      return { node: n.id, events: [] as AuditEvent[], more: before !== 0 };
    }
  }));
  const merged: ClusterAuditEvent[] = pages.flatMap((p) => p.events.map((e) => ({ ...e, node: p.node })));
  merged.sort((a, b) => (a.time === b.time ? (a.node === b.node ? b.seq - a.seq : a.node < b.node ? -1 : 1) : a.time < b.time ? 1 : -1));
  const events = merged.slice(0, q.limit);
  const next: Cursor = { ...cursor };
  let more = false;
  for (const p of pages) {
    const taken = events.filter((e) => e.node === p.node);
    const left = p.events.length - taken.length;
    if (taken.length > 0) next[p.node] = taken.at(-1)!.seq;
    if (left > 0 || p.more) more = true;
    else if (taken.length === p.events.length && !p.more && !incomplete.some((i) => i.startsWith(`node ${p.node} `))) next[p.node] = 0;
  }
  return { events, nextCursor: more ? Buffer.from(JSON.stringify(next)).toString('base64url') : null, incomplete };
}
