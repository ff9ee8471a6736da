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
 *
 * The target side, for a move driven by the source node in another process
 * (http-move-target.ts is its client; each call is one `MoveTarget` method):
 *
 * - `POST   /internal/v1/moves/:moveId/target` `{tenant, incarnation, epoch, info}` → begin the copy (the tenant must be `moving` at `epoch − 1`, and this node's region allowed for it)
 * - `POST   /internal/v1/moves/:moveId/target/chunk` (application/octet-stream: whole pages) · `…/changes` (a change set, change-wire.ts)
 * - `POST   /internal/v1/moves/:moveId/target/sync` · `…/publish` · `…/finish` `{epoch}` · `…/activate` · `…/discard`
 * - `GET    /internal/v1/moves/:moveId/target/state` → `{checksum, txid}`
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DomicileError } from '@domicile/errors';
import { DEFAULT_PAGE_HASH, formatChecksum } from '@domicile/replication';
import { authenticate, bearerToken } from '../auth/authenticate.ts';
import type { Runtime } from '../runtime.ts';
import { randomSecret, readOrCreateSecret, secretFiles } from '../secrets.ts';
import { assertTenantId, getLiveTenant } from '../tenant-service.ts';
import { checkMove } from '@domicile/policy';
import { shardPath } from '@domicile/shard';
import { decodeChanges, encodeChanges } from './change-wire.ts';
import { MOVE_PROTOCOL_VERSION } from './protocol.ts';
import { localShardFiles } from './residency-audit.ts';
import { LocalMoveSource, LocalMoveTarget, type LocalSourceDeps } from './move-transport.ts';
import type { SnapshotInfo } from './wal-follower.ts';


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
    const pageSize = ch.commits.find((c) => c.pages.length > 0)?.pages[0]!.data.byteLength ?? 4096;
    const bytes = encodeChanges(ch, { tenant, incarnation: t.incarnation, epoch: t.epoch }, pageSize);
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

  targetRoutes(app, rt, guard);

  // The residency audit of a cluster reads every node's files through this (residency-audit.ts).
  app.get('/internal/v1/residency/files', guard, async () => ({ nodes: await localShardFiles(rt) }));
}

/** A target that saw no call this long is discarded (its source died mid-move). */
const TARGET_IDLE_MS = 10 * 60_000;
/** Largest body of a chunk or change set. */
const MAX_TRANSFER_BYTES = 64 * 1024 * 1024;

/** The target side of a move driven by a source node in another process. */
function targetRoutes(app: FastifyInstance, rt: Runtime, guard: { onRequest: (request: FastifyRequest) => Promise<void> }): void {
  const targets = new Map<string, { target: LocalMoveTarget; tenant: string; usedAt: number }>();
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, t] of targets) {
      if (now - t.usedAt < TARGET_IDLE_MS) continue;
      targets.delete(id);
      rt.log.warn({ tenant: t.tenant, moveId: id }, 'move target idle for too long (its source is gone): discarded');
      void t.target.discard().catch(() => undefined);
    }
  }, 60_000);
  sweep.unref();
  app.addHook('onClose', async () => {
    clearInterval(sweep);
    await Promise.all([...targets.values()].map((t) => t.target.discard().catch(() => undefined)));
  });
  const use = (moveId: string) => {
    const t = targets.get(moveId);
    if (!t) throw new DomicileError('NOT_FOUND', 'no move target with this id on this node');
    t.usedAt = Date.now();
    return t;
  };

  app.register(async (scope) => {
    // Raw page bytes; only in this scope (the public API stays JSON only).
    scope.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: MAX_TRANSFER_BYTES }, (_req, body, done) => done(null, body));

    scope.post<{ Params: { moveId: string }; Body: { tenant: string; incarnation: string; epoch: number; info: SnapshotInfo } }>('/internal/v1/moves/:moveId/target', {
      ...guard,
      schema: {
        body: {
          type: 'object', required: ['tenant', 'incarnation', 'epoch', 'info'], additionalProperties: false,
          properties: {
            tenant: { type: 'string' }, incarnation: { type: 'string' }, epoch: { type: 'integer', minimum: 2 },
            info: {
              type: 'object', required: ['pageSize', 'pageCount', 'bytes'], additionalProperties: false,
              properties: { pageSize: { type: 'integer', minimum: 512, maximum: 65536 }, pageCount: { type: 'integer', minimum: 0 }, bytes: { type: 'integer', minimum: 0 } },
            },
          },
        },
      },
    }, async (request) => {
      const { moveId } = request.params;
      const { tenant, incarnation, epoch, info } = request.body;
      assertTenantId(tenant);
      if (targets.has(moveId)) throw new DomicileError('MOVE_IN_PROGRESS', 'this move already has a target');
      const node = rt.cluster ? rt.nodeForRegion(rt.cluster.region) : undefined;
      if (!rt.cluster || !node) throw new DomicileError('NODE_UNAVAILABLE', 'this node takes moves from other processes only in a cluster');
      rt.cluster.assertServing();
      const t = await getLiveTenant(rt, tenant);
      if (t.state !== 'moving' || t.incarnation !== incarnation || t.epoch + 1 !== epoch) {
        throw new DomicileError('TENANT_MOVING', 'the tenant is not being moved at this epoch', { tenant });
      }
      // The source checked the policy; this node checks it too before a byte lands here (invariant 3).
      checkMove(rt.policy, t, node.region);
      const ref = { tenant, incarnation, epoch, path: shardPath(node.dir, tenant) };
      const target = new LocalMoveTarget(ref, moveId, rt.replicator ? rt.bucketFor(node.region) : undefined);
      targets.set(moveId, { target, tenant, usedAt: Date.now() });
      try {
        await target.begin(info);
      } catch (err) {
        targets.delete(moveId);
        await target.discard().catch(() => undefined);
        throw err;
      }
      // The page hash this build's checksums sum: a source of another refuses before it copies anything.
      return { version: MOVE_PROTOCOL_VERSION, node: node.id, pageHash: DEFAULT_PAGE_HASH };
    });

    scope.post<{ Params: { moveId: string }; Body: Buffer }>('/internal/v1/moves/:moveId/target/chunk', guard, async (request) => {
      await use(request.params.moveId).target.write(bodyBytes(request.body));
      return { ok: true };
    });

    scope.post<{ Params: { moveId: string }; Body: Buffer }>('/internal/v1/moves/:moveId/target/changes', guard, async (request) => {
      const t = use(request.params.moveId);
      const { changes, tenant } = decodeChanges(bodyBytes(request.body));
      if (tenant !== t.tenant) throw new DomicileError('BAD_REQUEST', 'a change set of another tenant');
      await t.target.apply(changes);
      return { ok: true };
    });

    for (const op of ['sync', 'publish'] as const) {
      scope.post<{ Params: { moveId: string } }>(`/internal/v1/moves/:moveId/target/${op}`, guard, async (request) => {
        await use(request.params.moveId).target[op]();
        return { ok: true };
      });
    }

    scope.get<{ Params: { moveId: string } }>('/internal/v1/moves/:moveId/target/state', guard, async (request) => {
      const s = await use(request.params.moveId).target.state();
      return { checksum: formatChecksum(s.checksum), txid: s.txid };
    });

    scope.post<{ Params: { moveId: string }; Body: { epoch: number } }>('/internal/v1/moves/:moveId/target/finish', {
      ...guard,
      schema: { body: { type: 'object', required: ['epoch'], additionalProperties: false, properties: { epoch: { type: 'integer', minimum: 2 } } } },
    }, async (request) => {
      await use(request.params.moveId).target.finish(request.body.epoch);
      return { ok: true };
    });

    scope.post<{ Params: { moveId: string } }>('/internal/v1/moves/:moveId/target/activate', guard, async (request) => {
      const t = use(request.params.moveId);
      targets.delete(request.params.moveId);
      // After the switch: this node is the primary. Replication resumes the move's pending generation now.
      const now = await getLiveTenant(rt, t.tenant);
      if (rt.cluster && now.node === rt.cluster.id) rt.replicator?.notify(rt.shardRef(now));
      return { ok: true };
    });

    scope.post<{ Params: { moveId: string } }>('/internal/v1/moves/:moveId/target/discard', guard, async (request) => {
      const t = targets.get(request.params.moveId);
      targets.delete(request.params.moveId);
      await t?.target.discard();
      return { discarded: t !== undefined };
    });
  });
}

function bodyBytes(body: unknown): Uint8Array {
  if (!(body instanceof Uint8Array)) throw new DomicileError('BAD_REQUEST', 'send the bytes as application/octet-stream');
  return body;
}
