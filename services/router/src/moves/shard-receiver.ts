/**
 * The target side of a move's data transfer: writes the warm copy and the
 * change sets into a temporary file beside the target path, keeping its own
 * rolling checksum of what it wrote; checks each change set's checksums
 * (DESIGN §9 step 4: incremental, no full-file hash inside the fence); at the
 * switch it stamps the new epoch into `_domicile_meta` and renames the file
 * into place. `discard()` removes every file it made (abort: no debris).
 *
 * File operations are synchronous on purpose: page-cache writes of a few
 * pages take microseconds, and inside the fence an asynchronous call would
 * wait its turn in libuv's thread pool behind unrelated work.
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { DomicileError } from '@domicile/errors';
import { applyTransactionHashes, DbHashState, formatChecksum, readDomicileMeta, type DomicileMeta } from '@domicile/replication';
import type { ShardChanges, SnapshotInfo } from './wal-follower.ts';

const COMPANIONS = ['', '-wal', '-shm', '-journal'] as const;

/** Receives one shard. */
export class ShardReceiver {
  readonly #final: string;
  readonly #tmp: string;
  #fd: number | undefined;
  #info: SnapshotInfo | undefined;
  #state = new DbHashState();
  #nextPage = 1;
  #renamed = false;

  /** `finalPath`: where the shard lives once the move is done (its region's shard dir). */
  constructor(finalPath: string, moveId: string) {
    this.#final = finalPath;
    this.#tmp = `${finalPath}.move-${moveId}.tmp`;
  }

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

  /** Applies a change set; its pre- and post-checksums must match this copy's own. */
  async apply(ch: ShardChanges): Promise<void> {
    const { fd, info } = this.#open();
    if (this.#nextPage - 1 !== info.pageCount) throw new DomicileError('INTERNAL', 'changes before the warm copy was complete');
    if (ch.preChecksum !== this.#state.checksum) {
      throw new DomicileError('INTERNAL', `move: checksum mismatch before a change set (target ${formatChecksum(this.#state.checksum)}, source ${formatChecksum(ch.preChecksum)})`);
    }
    if (ch.truncateTo < this.#state.pageCount) ftruncateSync(fd, ch.truncateTo * info.pageSize);
    for (const p of ch.pages) writeAll(fd, p.data, (p.pgno - 1) * info.pageSize);
    ftruncateSync(fd, ch.commitSize * info.pageSize);
    const post = applyTransactionHashes(this.#state, ch);
    if (post !== ch.postChecksum) {
      throw new DomicileError('INTERNAL', `move: checksum mismatch after a change set (target ${formatChecksum(post)}, source ${formatChecksum(ch.postChecksum)})`);
    }
  }

  /** Rolling checksum of the copy. */
  get checksum(): bigint { return this.#state.checksum; }

  /** `_domicile_meta` as the copy holds it, read from its pages. */
  async meta(): Promise<DomicileMeta | null> {
    const { fd, info } = this.#open();
    const pages = this.#state.pageCount;
    return readDomicileMeta((p) => {
      if (p < 1 || p > pages) return undefined;
      const b = new Uint8Array(info.pageSize);
      return readSync(fd, b, 0, info.pageSize, (p - 1) * info.pageSize) === info.pageSize ? b : undefined;
    });
  }

  /** fsync the copy (before the fence: the fence then only syncs the last few pages). */
  async sync(): Promise<void> {
    fsyncSync(this.#open().fd);
  }

  /**
   * The switch: stamp `epoch` into `_domicile_meta` (a trusted connection of
   * Domicile's own; its close folds the one commit and removes its -wal),
   * fsync once, rename into place.
   */
  async finish(epoch: number): Promise<void> {
    const { fd } = this.#open();
    closeSync(fd);
    this.#fd = undefined;
    const db = new Database(this.#tmp, { fileMustExist: true });
    try {
      db.pragma('synchronous = OFF');
      const res = db.prepare('UPDATE main._domicile_meta SET epoch = ? WHERE id = 1').run(epoch);
      if (res.changes !== 1) throw new DomicileError('INTERNAL', 'the moved shard has no _domicile_meta row');
    } finally {
      db.close();
    }
    for (const s of ['-wal', '-shm']) rmSync(this.#tmp + s, { force: true });
    const synced = openSync(this.#tmp, 'r+');
    try {
      fsyncSync(synced);
    } finally {
      closeSync(synced);
    }
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
