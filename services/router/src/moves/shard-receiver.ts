/**
 * The target side of a move's data transfer: writes the warm copy and the
 * change sets into a temporary file beside the target path, keeping its own
 * rolling checksum of what it wrote; checks each change set's checksums
 * (DESIGN §9 step 4: incremental, no full-file hash inside the fence); at the
 * switch it stamps the new epoch into `_domicile_meta` and renames the file
 * into place. `discard()` removes every file it made (abort: no debris).
 */
import { mkdirSync } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
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
  #fh: FileHandle | undefined;
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
    try {
      await (await open(this.#final, 'r')).close();
      throw new DomicileError('INTERNAL', 'a shard file already exists at the target path', { file: path.basename(this.#final) });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.#info = info;
    this.#state = new DbHashState(Math.max(1, info.pageCount));
    this.#fh = await open(this.#tmp, 'wx+', 0o600);
  }

  /** Appends a chunk of the warm copy (whole pages, in order). */
  async write(chunk: Uint8Array): Promise<void> {
    const { fh, info } = this.#open();
    if (chunk.byteLength % info.pageSize !== 0) throw new DomicileError('INTERNAL', 'a snapshot chunk is not whole pages');
    await fh.write(chunk, 0, chunk.byteLength, (this.#nextPage - 1) * info.pageSize);
    const n = chunk.byteLength / info.pageSize;
    for (let i = 0; i < n; i++) this.#state.setPage(this.#nextPage + i, chunk.subarray(i * info.pageSize, (i + 1) * info.pageSize));
    this.#nextPage += n;
  }

  /** Applies a change set; its pre- and post-checksums must match this copy's own. */
  async apply(ch: ShardChanges): Promise<void> {
    const { fh, info } = this.#open();
    if (this.#nextPage - 1 !== info.pageCount) throw new DomicileError('INTERNAL', 'changes before the warm copy was complete');
    if (ch.preChecksum !== this.#state.checksum) {
      throw new DomicileError('INTERNAL', `move: checksum mismatch before a change set (target ${formatChecksum(this.#state.checksum)}, source ${formatChecksum(ch.preChecksum)})`);
    }
    if (ch.truncateTo < this.#state.pageCount) await fh.truncate(ch.truncateTo * info.pageSize);
    for (const p of ch.pages) await fh.write(p.data, 0, p.data.byteLength, (p.pgno - 1) * info.pageSize);
    await fh.truncate(ch.commitSize * info.pageSize);
    const post = applyTransactionHashes(this.#state, ch);
    if (post !== ch.postChecksum) {
      throw new DomicileError('INTERNAL', `move: checksum mismatch after a change set (target ${formatChecksum(post)}, source ${formatChecksum(ch.postChecksum)})`);
    }
  }

  /** Rolling checksum of the copy. */
  get checksum(): bigint { return this.#state.checksum; }

  /** `_domicile_meta` as the copy holds it, read from its pages. */
  async meta(): Promise<DomicileMeta | null> {
    const { fh, info } = this.#open();
    const pages = this.#state.pageCount;
    const cache = new Map<number, Uint8Array>();
    // readDomicileMeta is synchronous: read the pages it may visit up front, lazily through a small sync cache.
    const read = async (pgno: number) => {
      const b = Buffer.alloc(info.pageSize);
      await fh.read(b, 0, info.pageSize, (pgno - 1) * info.pageSize);
      cache.set(pgno, b);
    };
    for (;;) {
      let missing: number | undefined;
      let meta: DomicileMeta | null = null;
      try {
        meta = readDomicileMeta((p) => {
          if (p < 1 || p > pages) return undefined;
          const hit = cache.get(p);
          if (hit) return hit;
          missing = p;
          throw new NeedPage();
        });
      } catch (err) {
        if (!(err instanceof NeedPage)) throw err;
      }
      if (missing === undefined) return meta;
      await read(missing);
    }
  }

  /** fsync the copy (before the fence: the fence then only syncs the last few pages). */
  async sync(): Promise<void> {
    await this.#open().fh.sync();
  }

  /**
   * The switch: sync, stamp `epoch` into `_domicile_meta` (a trusted
   * connection of Domicile's own; its close folds the one commit and removes
   * its -wal), rename into place. Returns the final path.
   */
  async finish(epoch: number): Promise<string> {
    const { fh } = this.#open();
    await fh.sync();
    await fh.close();
    this.#fh = undefined;
    const db = new Database(this.#tmp, { fileMustExist: true });
    try {
      db.pragma('synchronous = FULL');
      const res = db.prepare('UPDATE main._domicile_meta SET epoch = ? WHERE id = 1').run(epoch);
      if (res.changes !== 1) throw new DomicileError('INTERNAL', 'the moved shard has no _domicile_meta row');
    } finally {
      db.close();
    }
    for (const s of ['-wal', '-shm']) await rm(this.#tmp + s, { force: true });
    await rename(this.#tmp, this.#final);
    this.#renamed = true;
    return this.#final;
  }

  /** Abort: close and delete every file this receiver made (and the final file if it was renamed already). */
  async discard(): Promise<void> {
    await this.#fh?.close().catch(() => undefined);
    this.#fh = undefined;
    for (const s of COMPANIONS) await rm(this.#tmp + s, { force: true });
    if (this.#renamed) for (const s of COMPANIONS) await rm(this.#final + s, { force: true });
  }

  #open(): { fh: FileHandle; info: SnapshotInfo } {
    if (!this.#fh || !this.#info) throw new DomicileError('INTERNAL', 'the move target is not receiving');
    return { fh: this.#fh, info: this.#info };
  }
}

class NeedPage extends Error {}
