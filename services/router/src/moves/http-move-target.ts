/**
 * The target end of a move in another process (the cluster): each
 * `MoveTarget` call is one request to the target node's
 * `/internal/v1/moves/:moveId/target/...` routes (internal-routes.ts), with
 * the cluster credential. Chunks and change sets travel as
 * application/octet-stream; an error answer comes back as the
 * DomicileError it names (so an abort reports the target's own code); a
 * node that does not answer is NODE_UNAVAILABLE.
 */
import { DomicileError, ERROR_CATALOGUE, type ErrorCode } from '@domicile/errors';
import { DEFAULT_PAGE_HASH, PageHash, pageHashName } from '@domicile/replication';
import { encodeChanges } from './change-wire.ts';
import { MOVE_PROTOCOL_VERSION } from './protocol.ts';
import type { MoveTarget } from './move-transport.ts';
import type { ShardChanges, SnapshotInfo } from './wal-follower.ts';

/** Where and as whom the target is reached. */
export interface HttpTargetOptions {
  /** The target node's public URL. */
  url: string;
  nodeId: string;
  moveId: string;
  clusterSecret: string;
  tenant: string;
  incarnation: string;
  /** The new epoch. */
  epoch: number;
  /** Per request. Default 60 s (a 1 MiB chunk, or a publish that uploads a snapshot). */
  timeoutMs?: number;
}

/** A move target behind HTTP. */
export class HttpMoveTarget implements MoveTarget {
  readonly #o: HttpTargetOptions;
  #pageSize = 4096;

  constructor(opts: HttpTargetOptions) {
    this.#o = opts;
  }

  async begin(info: SnapshotInfo): Promise<void> {
    this.#pageSize = info.pageSize;
    const res = (await this.#call('POST', '', { tenant: this.#o.tenant, incarnation: this.#o.incarnation, epoch: this.#o.epoch, info })) as { version?: unknown; pageHash?: unknown };
    const major = String(res?.version ?? '').split('.')[0];
    if (major !== MOVE_PROTOCOL_VERSION.split('.')[0]) {
      await this.#refuse(`target node ${this.#o.nodeId} speaks move protocol ${String(res?.version)}; this node speaks ${MOVE_PROTOCOL_VERSION}`);
    }
    // Change sets carry checksums of this build's page hash; a target that names none predates XXH64 (SHA-256).
    const theirs = typeof res?.pageHash === 'number' ? res.pageHash : PageHash.sha256;
    if (theirs !== DEFAULT_PAGE_HASH) {
      await this.#refuse(`target node ${this.#o.nodeId} sums ${pageHashName(theirs)} page hashes, this node ${pageHashName(DEFAULT_PAGE_HASH)}: move between nodes of the same build`);
    }
  }

  /** A target this node cannot move to: its side is discarded, and the move fails with 503 NODE_UNAVAILABLE. */
  async #refuse(message: string): Promise<never> {
    await this.discard().catch(() => undefined);
    throw new DomicileError('NODE_UNAVAILABLE', message, { node: this.#o.nodeId });
  }

  async write(chunk: Uint8Array): Promise<void> {
    await this.#call('POST', '/chunk', chunk);
  }

  async apply(changes: ShardChanges): Promise<void> {
    await this.#call('POST', '/changes', encodeChanges(changes, { tenant: this.#o.tenant, incarnation: this.#o.incarnation, epoch: this.#o.epoch - 1 }, this.#pageSize));
  }

  async sync(): Promise<void> { await this.#call('POST', '/sync'); }
  async publish(): Promise<void> { await this.#call('POST', '/publish'); }

  async state(): Promise<{ checksum: bigint; txid: number | null }> {
    const s = (await this.#call('GET', '/state')) as { checksum: string; txid: number | null };
    return { checksum: BigInt(s.checksum), txid: s.txid };
  }

  async finish(epoch: number): Promise<void> { await this.#call('POST', '/finish', { epoch }); }
  async activate(): Promise<void> { await this.#call('POST', '/activate'); }
  async discard(): Promise<void> { await this.#call('POST', '/discard'); }

  async #call(method: 'GET' | 'POST', suffix: string, body?: unknown): Promise<unknown> {
    const o = this.#o;
    const headers: Record<string, string> = { authorization: `Bearer ${o.clusterSecret}` };
    let payload: string | Uint8Array | undefined;
    if (body instanceof Uint8Array) {
      headers['content-type'] = 'application/octet-stream';
      payload = body;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(`${o.url}/internal/v1/moves/${encodeURIComponent(o.moveId)}/target${suffix}`, {
        method, headers, ...(payload !== undefined ? { body: payload } : {}), signal: AbortSignal.timeout(o.timeoutMs ?? 60_000),
      });
    } catch (err) {
      throw new DomicileError('NODE_UNAVAILABLE', `the move's target node ${o.nodeId} did not answer`, { node: o.nodeId }, { cause: err });
    }
    const text = await res.text();
    let parsed: unknown;
    try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
    if (res.ok) return parsed;
    const e = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    const code: ErrorCode = typeof e?.code === 'string' && Object.hasOwn(ERROR_CATALOGUE, e.code) ? (e.code as ErrorCode) : 'INTERNAL';
    throw new DomicileError(code, `target node ${o.nodeId}: ${typeof e?.message === 'string' ? e.message : `HTTP ${res.status}`}`, { node: o.nodeId });
  }
}
