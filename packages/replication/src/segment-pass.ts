/**
 * One shipping pass of a tenant's WAL (docs/replication.md, "Threads"): store
 * the segment a failed upload left behind (the same bytes under the same key:
 * objects are written once), then capture the commits made since and store
 * them as the next segment, acknowledging each to the shipper once the bucket
 * holds it. The replicator asks for a pass wherever the shipper lives; on the
 * node that is the shipper thread, so a pass costs the event loop one message
 * and no upload work.
 */
import { isAlreadyExists, type ObjectBody, type ObjectStore } from '@domicile/object-store';
import type { CaptureResult, WalShipper } from './wal-shipper.ts';

/** One segment the bucket acknowledged during a pass. */
export interface SegmentUpload {
  bytes: number;
  /** Upload time. */
  seconds: number;
  maxTxid: number;
}

/** What a pass did. `uploads` lists the segments stored, the retried one first. */
export type PassResult =
  /** `stored`: the fresh capture was stored; `none`: it found no new commit. */
  | { kind: 'stored' | 'none'; uploads: SegmentUpload[]; walBytes: number }
  /** The WAL does not continue the generation (see `CaptureResult`): begin a new one. */
  | { kind: 'restart'; uploads: SegmentUpload[]; reason: string };

/** `put` write-once; a retry of an upload that landed is not an error (the key names the content). */
export async function putOnce(store: ObjectStore, key: string, body: ObjectBody): Promise<void> {
  try {
    await store.put(key, body, { ifNoneMatch: true });
  } catch (err) {
    if (isAlreadyExists(err)) return;
    throw err;
  }
}

/** A shipper and the segment it captured but could not store yet; see the file comment. */
export class SegmentPasses {
  readonly shipper: WalShipper;
  #unstored: Extract<CaptureResult, { kind: 'segment' }> | null = null;

  constructor(shipper: WalShipper) {
    this.shipper = shipper;
  }

  /** True while a captured segment waits to be stored (the next pass retries it first). */
  get unstored(): boolean {
    return this.#unstored !== null;
  }

  /**
   * Run a pass into `store`. A failed upload throws the store's error and
   * keeps the segment for the next pass; nothing is acknowledged that the
   * bucket does not hold. `onCaptured` runs once the fresh segment is
   * captured, before its upload (the shipper's `txid` has moved).
   */
  async pass(store: ObjectStore, onCaptured?: () => void): Promise<PassResult> {
    const uploads: SegmentUpload[] = [];
    if (this.#unstored) uploads.push(await this.#store(store));
    const c = await this.shipper.captureAsync();
    if (c.kind === 'restart') return { kind: 'restart', uploads, reason: c.reason };
    if (c.kind === 'none') return { kind: 'none', uploads, walBytes: c.walBytes };
    this.#unstored = c;
    onCaptured?.();
    uploads.push(await this.#store(store));
    return { kind: 'stored', uploads, walBytes: c.walBytes };
  }

  async #store(store: ObjectStore): Promise<SegmentUpload> {
    const s = this.#unstored!;
    const started = performance.now();
    await putOnce(store, s.key, s.bytes);
    this.shipper.acknowledge(s.maxTxid);
    this.#unstored = null;
    return { bytes: s.bytes.byteLength, seconds: (performance.now() - started) / 1000, maxTxid: s.maxTxid };
  }
}
