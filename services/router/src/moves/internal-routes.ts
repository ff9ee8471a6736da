/**
 * Node-to-node move endpoints (DESIGN §9): the source side of the move
 * protocol, for a target node in another process (the cluster). They accept
 * only the cluster credential (`Authorization: Bearer <DOMICILE_CLUSTER_SECRET>`,
 * compared in constant time): no credential or an unknown one is 401, an admin
 * or tenant token is 403. On the embedded default the move runs in-process
 * (move-transport.ts) and these routes serve the same operations over HTTP.
 *
 * - `POST   /internal/v1/moves/:moveId/source` `{tenant, incarnation, epoch}` → the warm copy's `{pageSize, pageCount, bytes}`
 * - `GET    /internal/v1/moves/:moveId/snapshot` → the pinned database file (application/octet-stream)
 * - `GET    /internal/v1/moves/:moveId/segments` → the commits since the last call as one segment (replication format, 200) or 204
 * - `POST   /internal/v1/moves/:moveId/fence` → `{checksum, txid}` of the fenced source
 * - `POST   /internal/v1/moves/:moveId/unfence` → the source serves on (abort)
 * - `POST   /internal/v1/moves/:moveId/forward` → where held requests go: the tenant's placement once the gate opens
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DomicileError } from '@domicile/errors';
import { Compression, encodeSegment, formatChecksum } from '@domicile/replication';
import { authenticate, bearerToken } from '../auth/authenticate.ts';
import type { Runtime } from '../runtime.ts';
import { randomSecret, readOrCreateSecret, secretFiles } from '../secrets.ts';
import { assertTenantId, getLiveTenant } from '../tenant-service.ts';
import { LocalMoveSource, type LocalSourceDeps } from './move-transport.ts';

/** Header of the protocol's major version; a peer speaking another major is refused. */
export const MOVE_PROTOCOL_VERSION = '1';

const sha = (s: string) => createHash('sha256').update(s).digest();

/** Refuses anything but the cluster credential. */
async function requireCluster(rt: Runtime, secret: Buffer, request: FastifyRequest): Promise<void> {
  let token: string;
  try {
    token = bearerToken(request);
  } catch {
    throw new DomicileError('UNAUTHORIZED', 'node-to-node routes need the cluster credential');
  }
  // Hashes of equal length: the comparison's time says nothing about the secret.
  if (timingSafeEqual(sha(token), secret)) return;
  let known = false;
  try { await authenticate(rt, request); known = true; } catch { /* not an admin or tenant token either */ }
  if (known) throw new DomicileError('FORBIDDEN', 'node-to-node routes take the cluster credential, not admin or tenant tokens');
  throw new DomicileError('UNAUTHORIZED', 'the cluster credential is not valid');
}

/** Registers the node-to-node move routes. */
export function internalMoveRoutes(app: FastifyInstance, rt: Runtime): void {
  const clusterSecret = rt.config.clusterSecret ?? readOrCreateSecret(secretFiles(rt.config.dataDir).clusterSecret, randomSecret).value;
  const secret = sha(clusterSecret);
  const sources = new Map<string, { source: LocalMoveSource; tenant: string }>();
  const deps = rt.moves.sourceDeps();
  app.addHook('onClose', async () => {
    await Promise.all([...sources.values()].map((s) => s.source.unfence().catch(() => undefined)));
  });

  const guard = { onRequest: async (request: FastifyRequest) => requireCluster(rt, secret, request) };
  const get = (moveId: string) => {
    const s = sources.get(moveId);
    if (!s) throw new DomicileError('NOT_FOUND', 'no move source with this id on this node');
    return s;
  };

  app.post<{ Params: { moveId: string }; Body: { tenant: string; incarnation: string; epoch: number } }>('/internal/v1/moves/:moveId/source', {
    ...guard,
    schema: {
      body: {
        type: 'object', required: ['tenant', 'incarnation', 'epoch'], additionalProperties: false,
        properties: { tenant: { type: 'string' }, incarnation: { type: 'string' }, epoch: { type: 'integer', minimum: 1 } },
      },
    },
  }, async (request) => {
    const { moveId } = request.params;
    if (sources.has(moveId)) throw new DomicileError('MOVE_IN_PROGRESS', 'this move already has a source');
    assertTenantId(request.body.tenant);
    const t = await getLiveTenant(rt, request.body.tenant);
    if (t.state !== 'moving' || t.incarnation !== request.body.incarnation || t.epoch !== request.body.epoch) {
      throw new DomicileError('TENANT_MOVING', 'the tenant is not being moved at this epoch here', { tenant: t.id });
    }
    const source = new LocalMoveSource(rt.shardRef(t), deps as LocalSourceDeps);
    sources.set(moveId, { source, tenant: t.id });
    try {
      return { version: MOVE_PROTOCOL_VERSION, ...(await source.open()) };
    } catch (err) {
      sources.delete(moveId);
      await source.unfence().catch(() => undefined);
      throw err;
    }
  });

  app.get<{ Params: { moveId: string } }>('/internal/v1/moves/:moveId/snapshot', guard, async (request, reply) => {
    const { source } = get(request.params.moveId);
    return reply.type('application/octet-stream').send(Readable.from(source.snapshot()));
  });

  app.get<{ Params: { moveId: string } }>('/internal/v1/moves/:moveId/segments', guard, async (request, reply) => {
    const { source, tenant } = get(request.params.moveId);
    const ch = await source.changes();
    if (!ch) return reply.code(204).send();
    const t = await getLiveTenant(rt, tenant);
    // On the wire a change set is a segment (compression none) with one transaction per WAL commit,
    // numbered from 1: the target learns the real txids from the pages (shard-receiver.ts).
    const now = Date.now();
    const txs = ch.commits.map((c, i) => ({ txid: i + 1, time: now, truncateTo: c.commitSize, commitSize: c.commitSize, postChecksum: c.postChecksum, pages: c.pages }));
    const pageSize = ch.commits.find((c) => c.pages.length > 0)?.pages[0]!.data.byteLength ?? 4096;
    const bytes = encodeSegment(
      { tenant, incarnation: t.incarnation, generation: '0'.repeat(20), epoch: t.epoch, pageSize, preChecksum: ch.preChecksum, prePageCount: 0 },
      txs,
      { compression: Compression.none },
    );
    return reply.type('application/octet-stream').send(Buffer.from(bytes));
  });

  app.post<{ Params: { moveId: string } }>('/internal/v1/moves/:moveId/fence', guard, async (request) => {
    const { source } = get(request.params.moveId);
    await source.fence();
    const s = await source.state();
    return { checksum: formatChecksum(s.checksum), txid: s.txid };
  });

  app.post<{ Params: { moveId: string } }>('/internal/v1/moves/:moveId/unfence', guard, async (request) => {
    const { source } = get(request.params.moveId);
    sources.delete(request.params.moveId);
    await source.unfence();
    return { unfenced: true };
  });

  app.post<{ Params: { moveId: string } }>('/internal/v1/moves/:moveId/forward', guard, async (request) => {
    const { tenant } = get(request.params.moveId);
    const leave = await rt.moves.gate.enter(tenant);
    try {
      const t = await getLiveTenant(rt, tenant);
      return { tenant, region: t.region, node: t.node, epoch: t.epoch };
    } finally {
      leave();
    }
  });
}
