/**
 * Where the replicator's WAL shippers live (docs/replication.md "Threads").
 * The replicator drives each tenant's `WalShipper` through a
 * {@link ShipperHandle}; a {@link Shippers} creates them. Two implementations
 * pass one contract suite (shippers.contract.test.ts):
 *
 * - {@link InProcessShippers}: the shippers run on the caller's thread (unit
 *   tests, tools);
 * - `ThreadShippers` (shipper-thread.ts): every shipper lives on one worker
 *   thread, so reading the WAL, hashing pages, encoding segments and
 *   uploading them never runs on the node's event loop. What the node runs.
 *
 * A handle's `txid`/`shippedTxid` are the shipper's as of the latest answer
 * (a pass, failed or not); `checksum` is the database checksum at the
 * generation's start (what its snapshot must carry), `pageHash` the page hash
 * it sums.
 */
import type { ObjectStore } from '@domicile/object-store';
import type { LiveFileLender } from '@domicile/shard';
import { SegmentPasses, WalShipper, type DbChecksum, type GenerationTip, type PageHashId, type PassResult, type ShipperOptions, type WalMark } from '@domicile/replication';

/** One tenant's shipper, whichever thread it runs on. Calls for one handle must not overlap (the replicator runs one pass per tenant). */
export interface ShipperHandle {
  /** Last txid captured. */
  readonly txid: number;
  /** Last txid acknowledged as stored. */
  readonly shippedTxid: number;
  /** Database checksum when the handle was created (the snapshot's, for a generation start). */
  readonly checksum: DbChecksum;
  /** The page hash of the shipper's checksums (the generation's). */
  readonly pageHash: PageHashId;
  /**
   * `SegmentPasses.pass`: store the segment a failed pass left, then the WAL's
   * new commits as the next segment, into `store` (the shipper's thread does
   * the upload too).
   */
  pass(store: ObjectStore): Promise<PassResult>;
  /** `WalShipper.checkpointAllowed`. */
  checkpointAllowed(): Promise<boolean>;
  /** `WalShipper.checkpointMark`: null when a checkpoint would lose something, else the mark a checkpoint job checks. */
  checkpointMark(): Promise<WalMark | null>;
  /** `WalShipper.noteCheckpoint`. */
  noteCheckpoint(result: { busy: number; log?: number; checkpointed?: number }): void;
  /** `WalShipper.close`. Idempotent. */
  close(): void;
}

/**
 * Run `fn` with a descriptor of the shipper's live database file borrowed from `lender` (none without
 * a lender), given back when `fn` settles. Shippers read the live file only through such a descriptor
 * (their construction, each pass): closing a descriptor of the file would drop the process's SQLite
 * locks on it (@domicile/shard live-file.ts). Without a lender they open and close the file themselves
 * (for processes with no SQLite connection to it).
 */
export async function withLiveFile<T>(lender: LiveFileLender | undefined, opts: ShipperOptions, fn: (fd: number | undefined) => Promise<T>): Promise<T> {
  if (!lender) return fn(undefined);
  const fd = lender.borrowLiveFile({ tenant: opts.tenant, path: opts.dbPath });
  try {
    return await fn(fd);
  } finally {
    lender.returnLiveFile(fd);
  }
}

/** `opts` with `liveFd` when there is one. */
export function withFd(opts: ShipperOptions, fd: number | undefined): ShipperOptions {
  return fd === undefined ? opts : { ...opts, liveFd: fd };
}

/** Creates shippers; see the file comment. */
export interface Shippers {
  /** `WalShipper.resume`: null when the local files do not continue the bucket's tip. */
  resume(opts: ShipperOptions, tip: GenerationTip): Promise<ShipperHandle | null>;
  /** `WalShipper.beginGenerationFromCopyAsync`: a generation starting at the checkpointed copy `copyPath`. */
  beginFromCopy(opts: ShipperOptions, copyPath: string): Promise<ShipperHandle>;
  /** Close every shipper and release the thread, if any. */
  close(): Promise<void>;
}

/**
 * Thrown by a handle whose shipper is gone (its thread exited): the caller
 * drops the handle and resumes from the bucket's tip, as after a restart.
 */
export class ShipperLostError extends Error {
  readonly code = 'SHIPPER_LOST';
}

/** True for a {@link ShipperLostError} (also across realms). */
export function isShipperLost(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'SHIPPER_LOST';
}

/** Shippers on the calling thread. */
export class InProcessShippers implements Shippers {
  readonly #open = new Set<WalShipper>();
  readonly #lender: LiveFileLender | undefined;

  /** `liveFiles`: lends the shippers their live files' descriptors (see {@link withLiveFile}). */
  constructor(opts: { liveFiles?: LiveFileLender } = {}) {
    this.#lender = opts.liveFiles;
  }

  async resume(opts: ShipperOptions, tip: GenerationTip): Promise<ShipperHandle | null> {
    const s = await withLiveFile(this.#lender, opts, async (fd) => WalShipper.resume(withFd(opts, fd), tip));
    return s ? this.#wrap(s, opts) : null;
  }

  async beginFromCopy(opts: ShipperOptions, copyPath: string): Promise<ShipperHandle> {
    return this.#wrap(await withLiveFile(this.#lender, opts, (fd) => WalShipper.beginGenerationFromCopyAsync(withFd(opts, fd), copyPath)), opts);
  }

  async close(): Promise<void> {
    for (const s of this.#open) s.close();
    this.#open.clear();
  }

  #wrap(s: WalShipper, opts: ShipperOptions): ShipperHandle {
    this.#open.add(s);
    const open = this.#open;
    const checksum = s.checksum;
    const passes = new SegmentPasses(s);
    const lender = this.#lender;
    return {
      get txid() { return s.txid; },
      get shippedTxid() { return s.shippedTxid; },
      checksum,
      pageHash: s.pageHash,
      pass: (store) => withLiveFile(lender, opts, async (fd) => {
        s.lendLiveFile(fd);
        try {
          return await passes.pass(store);
        } finally {
          s.lendLiveFile(undefined);
        }
      }),
      checkpointAllowed: async () => s.checkpointAllowed(),
      checkpointMark: async () => s.checkpointMark(),
      noteCheckpoint: (res) => s.noteCheckpoint(res),
      close: () => { open.delete(s); s.close(); },
    };
  }
}
