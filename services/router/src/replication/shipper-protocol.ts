/** Messages between the main thread and the shipper thread (shipper-thread.ts, shipper-worker.ts). */
import { deserializeError, isDomicileError, type SerializedError } from '@domicile/errors';
import type { DbChecksum, GenerationTip, PageHashId, ShipperOptions } from '@domicile/replication';

/** Main thread → worker. Calls with an `id` are answered; the others apply in order. */
export type ToShipperWorker =
  | { id: number; op: 'resume'; sid: number; opts: ShipperOptions; tip: GenerationTip }
  | { id: number; op: 'begin'; sid: number; opts: ShipperOptions; copyPath: string }
  /**
   * A `SegmentPasses.pass` into the bucket at `bucket` (a URL the thread opens once: `openObjectStore`);
   * `liveFd`: the main thread's descriptor of the live database file, lent for the pass (`WalShipper.lendLiveFile`).
   */
  | { id: number; op: 'pass'; sid: number; bucket: string; liveFd?: number }
  | { id: number; op: 'checkpointAllowed'; sid: number }
  | { id: number; op: 'checkpointMark'; sid: number }
  | { op: 'noteCheckpoint'; sid: number; result: { busy: number; log?: number; checkpointed?: number } }
  | { op: 'close'; sid: number };

/** A shipper's counters, sent with every answer about it. */
export interface ShipperState { txid: number; shippedTxid: number; checksum: DbChecksum; pageHash: PageHashId }

/** An error crossing the thread boundary: a DomicileError whole, another error's message and `code`. */
export type WireError = { domicile: SerializedError } | { message: string; code?: string };

/** Worker → main thread: answers, and (without an id) a shipper's counters during a pass, once it captured. */
export type FromShipperWorker =
  /** Posted once when the thread starts: its OS thread id (per-thread CPU in /metrics), when the platform has one. */
  | { tid: number | undefined }
  | { sid: number; state: ShipperState }
  | { id: number; ok: true; value: unknown; state?: ShipperState; puts?: BucketPuts }
  /** A failed pass also carries the shipper's counters (a retried upload may have landed first). */
  | { id: number; ok: false; error: WireError; state?: ShipperState; puts?: BucketPuts };

/**
 * An answer to a pass into an S3 bucket: how that bucket's store on the thread has sent its puts so
 * far (`S3ObjectStore.putStats`: totals since the thread started, and why lean puts are off, if they are).
 */
export interface BucketPuts extends PutTotals { bucket: string }

/** How puts into one S3 bucket were sent: as one lean request, or through the SDK's command; `leanOff`: no lean ones any more. */
export interface PutTotals { lean: number; sdk: number; leanOff: boolean }

/** `a` and `b` together (either may be of a thread that ended): counts add up, lean puts are off when either says so. */
export function addPuts(a: PutTotals | undefined, b: PutTotals): PutTotals {
  return { lean: (a?.lean ?? 0) + b.lean, sdk: (a?.sdk ?? 0) + b.sdk, leanOff: (a?.leanOff ?? false) || b.leanOff };
}

/** An error as the worker sent it. */
export function fromWire(e: WireError): Error {
  if ('domicile' in e) return deserializeError(e.domicile);
  return Object.assign(new Error(e.message), e.code === undefined ? {} : { code: e.code });
}

/** An error for the main thread. */
export function toWire(err: unknown): WireError {
  if (isDomicileError(err)) return { domicile: err.serialize() };
  const code = (err as { code?: unknown } | null)?.code;
  return { message: String((err as Error)?.message ?? err), ...(typeof code === 'string' ? { code } : {}) };
}

