/**
 * The pending generation of a move (DESIGN §9 step 2): the target uploads its
 * copy of the tenant to its own region's bucket as a new generation of the
 * new epoch before the fence — the snapshot once the warm copy has caught up,
 * then a segment of the transactions applied after it, and inside the fence a
 * last segment ending with the epoch stamp. After the switch the new primary's
 * replicator finds this generation in the bucket, checks that the shard file
 * continues its tip and resumes it: no checkpoint, copy or snapshot upload
 * after the switch, and the tenant's history in the new region starts before
 * the move instead of after it. An abort deletes every object of it.
 */
import { DomicileError } from '@domicile/errors';
import type { ObjectBody, ObjectStore } from '@domicile/object-store';
import {
  createSnapshot, encodeSegmentAsync, generationPrefix, newGenerationId, putOnce, segmentKey, snapshotKey, type GenerationRef, type PageHashId,
} from '@domicile/replication';
import { sweepBucket } from '../buckets/bucket-eraser.ts';
import type { PendingBatch } from './shard-receiver.ts';

/** Identity of the generation to create: the tenant at its new epoch. */
export interface PendingIdentity {
  tenant: string;
  incarnation: string;
  epoch: number;
}

/** Uploads one move's pending generation to the target region's bucket. */
export class PendingGeneration {
  readonly ref: GenerationRef;
  readonly #store: ObjectStore;
  readonly #now: () => number;
  #snapshotTxid: number | undefined;
  #lastTxid: number | undefined;

  constructor(store: ObjectStore, id: PendingIdentity, now: () => number = Date.now) {
    this.#store = store;
    this.#now = now;
    this.ref = { ...id, generation: newGenerationId(now()) };
  }

  /** Txid of the snapshot (undefined before {@link putSnapshot}). */
  get snapshotTxid(): number | undefined { return this.#snapshotTxid; }

  /**
   * Streams `dbPath` (which must not change meanwhile) as the generation's
   * snapshot; `checksum` is the copy's rolling checksum (of page hash
   * `pageHash`), which the stream verifies as it reads.
   */
  async putSnapshot(dbPath: string, checksum: bigint, pageHash: PageHashId): Promise<void> {
    if (this.#snapshotTxid !== undefined) throw new DomicileError('INTERNAL', 'the pending generation has its snapshot already');
    const snap = createSnapshot({ dbPath, ...this.ref, checksum, pageHash, time: this.#now() });
    try {
      await Promise.all([this.#put(snapshotKey(this.ref, snap.header.txid), snap.stream), snap.done]);
    } catch (err) {
      snap.stream.destroy();
      snap.done.catch(() => undefined);
      throw err;
    }
    this.#snapshotTxid = snap.header.txid;
    this.#lastTxid = snap.header.txid;
  }

  /** Uploads a batch of transactions as one segment (nothing for an empty batch). */
  async putSegment(batch: PendingBatch): Promise<void> {
    if (batch.txs.length === 0) return;
    if (this.#lastTxid === undefined) throw new DomicileError('INTERNAL', 'a segment of the pending generation before its snapshot');
    const first = batch.txs[0]!.txid;
    const last = batch.txs.at(-1)!.txid;
    if (first !== this.#lastTxid + 1) throw new DomicileError('INTERNAL', `the pending generation would skip from txid ${this.#lastTxid} to ${first}`);
    const bytes = await encodeSegmentAsync(
      { ...this.ref, pageSize: batch.pageSize, pageHash: batch.pageHash, preChecksum: batch.preChecksum, prePageCount: batch.prePageCount },
      batch.txs,
    );
    await this.#put(segmentKey(this.ref, first, last), bytes);
    this.#lastTxid = last;
  }

  /** Abort: deletes every object of the generation (verified by a listing). */
  async discard(): Promise<void> {
    await sweepBucket(this.#store, generationPrefix(this.ref), undefined);
  }

  async #put(key: string, body: ObjectBody): Promise<void> {
    try {
      await putOnce(this.#store, key, body);
    } catch (err) {
      throw new DomicileError(
        'REPLICATION_UNAVAILABLE',
        `the target region's bucket (${this.#store.describe()}) did not take the move's new generation; the tenant stays where it was`,
        { store: this.#store.describe() },
        { cause: err },
      );
    }
  }
}
