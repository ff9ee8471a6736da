/**
 * The target side of a move's data transfer: writes the warm copy and the
 * commits into a temporary file beside the target path, keeping its own
 * rolling checksum of what it wrote; checks every commit's checksum (DESIGN §9
 * step 4: incremental, no full-file hash inside the fence). From
 * {@link ShardReceiver.markSnapshot} on it also groups the commits it applies
 * by txid, as the replicator's shipper does, into the transactions of the
 * pending generation (pending-generation.ts uploads them). At the switch it
 * stamps the new epoch into `_domicile_meta` as one more transaction (txid + 1,
 * so the stamp is itself replicated) and renames the file into place.
 * `discard()` removes every file it made (abort: no debris).
 *
 * File operations are synchronous on purpose: page-cache writes of a few
 * pages take microseconds, and inside the fence an asynchronous call would
 * wait its turn in libuv's thread pool behind unrelated work.
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { DomicileError } from '@domicile/errors';
import {
  applyTransactionHashes, DbHashState, formatChecksum, pageHashName, readDomicileMeta, readWal, type DomicileMeta, type PageHashId, type SegmentTransaction,
} from '@domicile/replication';
import type { CommitChange, ShardChanges, SnapshotInfo } from './wal-follower.ts';

const COMPANIONS = ['', '-wal', '-shm', '-journal'] as const;

/** Transactions of the pending generation not handed out yet, with the database state they start from. */
export interface PendingBatch {
  pageSize: number;
  /** The page hash of the checksums. */
  pageHash: PageHashId;
  preChecksum: bigint;
  prePageCount: number;
  /** Consecutive txids; empty when nothing new. */
  txs: SegmentTransaction[];
}

/** WAL commits whose txid has not moved yet (merged into the next txid's transaction, as the shipper does). */
interface OpenUnit {
  truncateTo: number;
  commitSize: number;
  pages: Map<number, Uint8Array>;
}

/** Receives one shard. */
export class ShardReceiver {
  readonly #final: string;
  readonly #tmp: string;
  #fd: number | undefined;
  #info: SnapshotInfo | undefined;
  #state = new DbHashState();
  #nextPage = 1;
  #renamed = false;
  readonly #now: () => number;
  /** Grouping commits into transactions (after {@link markSnapshot}). */
  #collecting = false;
  #txid = 0;
  #unit: OpenUnit | null = null;
  #txs: SegmentTransaction[] = [];
  /** State after the last transaction handed out or collected: where the next batch starts. */
  #batchStart = { checksum: 0n, pageCount: 0 };
  #lastTx = { checksum: 0n, pageCount: 0 };

  /** `finalPath`: where the shard lives once the move is done (its region's shard dir). */
  constructor(finalPath: string, moveId: string, now: () => number = Date.now) {
    this.#final = finalPath;
    this.#tmp = `${finalPath}.move-${moveId}.tmp`;
    this.#now = now;
  }

  /** The temporary file the copy is written to (the pending generation's snapshot is read from it). */
  get tmpPath(): string { return this.#tmp; }

  /** Starts the copy; refuses when the target path is taken (a live file there is never overwritten). */
  async begin(info: SnapshotInfo): Promise<void> {
    mkdirSync(path.dirname(this.#final), { recursive: true });
    if (existsSync(this.#final)) throw new DomicileError('INTERNAL', 'a shard file already exists at the target path', { file: path.basename(this.#final) });
    this.#info = info;
    this.#state = new DbHashState(Math.max(1, info.pageCount));
    this.#fd = openSync(this.#tmp, 'wx+', 0o600);
  }

  /** Appends a chunk of the warm copy (whole pages, in order). */
  async write(chunk: Uint8Array): Promise<void> {
    const { fd, info } = this.#open();
    if (chunk.byteLength % info.pageSize !== 0) throw new DomicileError('INTERNAL', 'a snapshot chunk is not whole pages');
    writeAll(fd, chunk, (this.#nextPage - 1) * info.pageSize);
    const n = chunk.byteLength / info.pageSize;
    for (let i = 0; i < n; i++) this.#state.setPage(this.#nextPage + i, chunk.subarray(i * info.pageSize, (i + 1) * info.pageSize));
    this.#nextPage += n;
  }

  /** Applies commits in order; each one's checksum must match this copy's own. */
  async apply(ch: ShardChanges): Promise<void> {
    const { fd, info } = this.#open();
    if (this.#nextPage - 1 !== info.pageCount) throw new DomicileError('INTERNAL', 'changes before the warm copy was complete');
    // (A source of this build refuses such a target at `begin`; one of an older build does not ask.)
    if (ch.pageHash !== this.#state.pageHash) {
      throw new DomicileError(
        'NODE_UNAVAILABLE',
        `move: the source node sums ${pageHashName(ch.pageHash)} page hashes, this node ${pageHashName(this.#state.pageHash)}: move between nodes of the same build`,
      );
    }
    if (ch.preChecksum !== this.#state.checksum) {
      throw new DomicileError('INTERNAL', `move: checksum mismatch before a change set (target ${formatChecksum(this.#state.checksum)}, source ${formatChecksum(ch.preChecksum)})`);
    }
    for (const c of ch.commits) {
      const before = this.#state.pageCount;
      if (c.commitSize < before) ftruncateSync(fd, c.commitSize * info.pageSize);
      for (const p of c.pages) writeAll(fd, p.data, (p.pgno - 1) * info.pageSize);
      if (c.commitSize > before) ftruncateSync(fd, c.commitSize * info.pageSize);
      const post = applyTransactionHashes(this.#state, { truncateTo: c.commitSize, commitSize: c.commitSize, pages: c.pages });
      if (post !== c.postChecksum) {
        throw new DomicileError('INTERNAL', `move: checksum mismatch after a commit (target ${formatChecksum(post)}, source ${formatChecksum(c.postChecksum)})`);
      }
      if (this.#collecting) this.#collect(c);
    }
    if (this.#state.checksum !== ch.postChecksum) {
      throw new DomicileError('INTERNAL', `move: checksum mismatch after a change set (target ${formatChecksum(this.#state.checksum)}, source ${formatChecksum(ch.postChecksum)})`);
    }
  }

  /**
   * The copy as it stands becomes the pending generation's snapshot: from now
   * on every commit applied is grouped into transactions by txid. Call only
   * after at least one round of changes (before it the copy may mix states;
   * see wal-follower.ts). Returns the snapshot's txid and checksum.
   */
  markSnapshot(): { txid: number; checksum: bigint; pageHash: PageHashId } {
    const meta = this.#metaNow();
    this.#collecting = true;
    this.#txid = meta.txid;
    this.#unit = null;
    this.#txs = [];
    this.#lastTx = { checksum: this.#state.checksum, pageCount: this.#state.pageCount };
    this.#batchStart = this.#lastTx;
    return { txid: meta.txid, checksum: this.#state.checksum, pageHash: this.#state.pageHash };
  }

  /** The transactions collected since the previous call (commits whose txid has not moved yet stay back). */
  takeBatch(): PendingBatch {
    const { info } = this.#open();
    const batch: PendingBatch = { pageSize: info.pageSize, pageHash: this.#state.pageHash, preChecksum: this.#batchStart.checksum, prePageCount: this.#batchStart.pageCount, txs: this.#txs };
    this.#txs = [];
    this.#batchStart = this.#lastTx;
    return batch;
  }

  /** Merges one applied commit into the open unit; closes it as a transaction when the txid moved. */
  #collect(c: CommitChange): void {
    const u = this.#unit ??= { truncateTo: c.commitSize, commitSize: c.commitSize, pages: new Map() };
    u.truncateTo = Math.min(u.truncateTo, c.commitSize);
    u.commitSize = c.commitSize;
    for (const p of c.pages) u.pages.set(p.pgno, p.data);
    for (const pgno of u.pages.keys()) if (pgno > c.commitSize) u.pages.delete(pgno);
    const txid = this.#metaNow().txid;
    if (txid === this.#txid) return;
    if (txid !== this.#txid + 1) throw new DomicileError('INTERNAL', `move: the source's txid went from ${this.#txid} to ${txid} in one commit`);
    const pages = [...u.pages.entries()].sort((a, b) => a[0] - b[0]).map(([pgno, data]) => ({ pgno, data }));
    this.#txs.push({ txid, time: this.#now(), truncateTo: u.truncateTo, commitSize: u.commitSize, postChecksum: this.#state.checksum, pages });
    this.#txid = txid;
    this.#unit = null;
    this.#lastTx = { checksum: this.#state.checksum, pageCount: this.#state.pageCount };
  }

  /** Rolling checksum of the copy. */
  get checksum(): bigint { return this.#state.checksum; }

  /** `_domicile_meta` as the copy holds it, read from its pages. */
  async meta(): Promise<DomicileMeta | null> {
    return this.#readMeta();
  }

  #readMeta(): DomicileMeta | null {
    const { fd, info } = this.#open();
    const pages = this.#state.pageCount;
    return readDomicileMeta((p) => {
      if (p < 1 || p > pages) return undefined;
      const b = new Uint8Array(info.pageSize);
      return readSync(fd, b, 0, info.pageSize, (p - 1) * info.pageSize) === info.pageSize ? b : undefined;
    });
  }

  #metaNow(): DomicileMeta {
    const meta = this.#readMeta();
    if (!meta) throw new DomicileError('INTERNAL', 'the moved shard has no _domicile_meta row');
    return meta;
  }

  /** fsync the copy (before the fence: the fence then only syncs the last few pages). */
  async sync(): Promise<void> {
    fsyncSync(this.#open().fd);
  }

  /**
   * The switch, part one: stamp `epoch` into `_domicile_meta` as a transaction
   * of its own (txid + 1) through a trusted connection of Domicile's own. Its
   * WAL frames are read before the connection closes (the close folds them
   * into the file and removes the -wal), so the stamp joins the pending
   * generation like any commit; the file is read back to check it.
   */
  async stamp(epoch: number): Promise<void> {
    const { info } = this.#open();
    const before = this.#metaNow();
    let commits: CommitChange[] = [];
    const db = new Database(this.#tmp, { fileMustExist: true });
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = OFF');
      const res = db.prepare('UPDATE main._domicile_meta SET epoch = ?, txid = txid + 1 WHERE id = 1').run(epoch);
      if (res.changes !== 1) throw new DomicileError('INTERNAL', 'the moved shard has no _domicile_meta row');
      commits = this.#walCommits(info.pageSize);
    } finally {
      db.close();
    }
    for (const s of ['-wal', '-shm']) rmSync(this.#tmp + s, { force: true });
    for (const c of commits) {
      c.postChecksum = applyTransactionHashes(this.#state, { truncateTo: c.commitSize, commitSize: c.commitSize, pages: c.pages });
      if (this.#collecting) this.#collect(c);
    }
    const after = this.#metaNow();
    if (after.epoch !== epoch || after.txid !== before.txid + 1) {
      throw new DomicileError('INTERNAL', `move: the epoch stamp did not reach the file (epoch ${after.epoch}, txid ${after.txid})`);
    }
  }

  /** The committed frames of the temporary file's WAL, one entry per commit. */
  #walCommits(pageSize: number): CommitChange[] {
    const wal = openSync(`${this.#tmp}-wal`, 'r');
    try {
      const res = readWal(wal);
      if (res.kind !== 'frames' || res.commits === 0) throw new DomicileError('INTERNAL', 'move: the epoch stamp left no commit in the WAL');
      if (res.header.pageSize !== pageSize) throw new DomicileError('INTERNAL', 'move: the stamp\'s WAL has another page size');
      const out: CommitChange[] = [];
      let pages = new Map<number, Uint8Array>();
      for (const f of res.frames) {
        pages.set(f.pgno, f.data);
        if (f.commitSize === 0) continue;
        const sorted = [...pages.entries()].filter(([p]) => p <= f.commitSize).sort((a, b) => a[0] - b[0]).map(([pgno, data]) => ({ pgno, data }));
        out.push({ commitSize: f.commitSize, pages: sorted, postChecksum: 0n }); // set once applied
        pages = new Map();
      }
      return out;
    } finally {
      closeSync(wal);
    }
  }

  /** The switch, part two: fsync once and rename the file into place. */
  async install(): Promise<void> {
    const { fd } = this.#open();
    fsyncSync(fd);
    closeSync(fd);
    this.#fd = undefined;
    renameSync(this.#tmp, this.#final);
    this.#renamed = true;
  }

  /** Abort: close and delete every file this receiver made (and the final file if it was renamed already). */
  async discard(): Promise<void> {
    if (this.#fd !== undefined) {
      try { closeSync(this.#fd); } catch { /* closed */ }
    }
    this.#fd = undefined;
    for (const s of COMPANIONS) rmSync(this.#tmp + s, { force: true });
    if (this.#renamed) for (const s of COMPANIONS) rmSync(this.#final + s, { force: true });
  }

  #open(): { fd: number; info: SnapshotInfo } {
    if (this.#fd === undefined || !this.#info) throw new DomicileError('INTERNAL', 'the move target is not receiving');
    return { fd: this.#fd, info: this.#info };
  }
}

function writeAll(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.byteLength) done += writeSync(fd, data, done, data.byteLength - done, position + done);
}
