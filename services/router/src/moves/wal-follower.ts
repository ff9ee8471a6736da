/**
 * The source side of a move's data transfer (DESIGN §9 steps 2–4): a
 * consistent copy of a live shard while it keeps serving, then the commits
 * made since, as page images, with a rolling checksum kept on the way.
 *
 * Consistency without stopping writes: the follower keeps a read transaction
 * open on the shard (a read-only connection of its own, on the main thread;
 * it runs no tenant SQL and never checkpoints). While it is open SQLite cannot
 * restart the WAL, and a checkpoint can fold into the database file only the
 * frames this reader already sees. So: copy the database file, then apply
 * every committed frame of the current log from its start — pages a
 * concurrent checkpoint changed under the copy are exactly pages those frames
 * rewrite. Each later read opens a fresh read transaction before it reads and
 * closes the older one after, so the log is never left unpinned; if SQLite
 * restarted it anyway (it may when every frame was folded and the pin read
 * the file only), nothing after the last read was lost and the new log is read
 * from its start. See docs/moves.md.
 */
import { closeSync, fstatSync, openSync, read, readSync } from 'node:fs';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { DomicileError } from '@domicile/errors';
import {
  applyTransactionHashes, DbHashState, headerPageSize, readWal, type PageHashId, type PageImage, type WalPosition,
} from '@domicile/replication';

/** The smallest shape of a better-sqlite3 connection the follower uses. */
interface PinConnection {
  exec(sql: string): unknown;
  prepare(sql: string): { get(...args: unknown[]): unknown };
  close(): unknown;
}

const readAsync = promisify(read);

/** `fs.read` at `position`, off the event loop; the bytes read. */
async function readAt(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return (await readAsync(fd, buf, offset, length, position)).bytesRead;
}

/** What a warm copy will hold. */
export interface SnapshotInfo {
  pageSize: number;
  /** Pages in the database file when the copy started. */
  pageCount: number;
  /** `pageSize × pageCount`. */
  bytes: number;
}

/** One WAL commit: the pages it wrote (the last image of each) and the database after it. */
export interface CommitChange {
  /** Database size in pages after the commit (pages past it are dropped). */
  commitSize: number;
  /** Ascending by page number. */
  pages: PageImage[];
  /** Rolling checksum after the commit (checksum.ts). */
  postChecksum: bigint;
}

/**
 * The commits since the previous read, one by one: the target keeps them
 * apart so that it can group them by txid into the pending generation's
 * segments (exact-txid point-in-time restore survives a move).
 */
export interface ShardChanges {
  commits: CommitChange[];
  /** Rolling checksum before the first commit and after the last. */
  preChecksum: bigint;
  postChecksum: bigint;
  /** The page hash those checksums sum (the source node's build's; a receiver of another refuses the set). */
  pageHash: PageHashId;
  /** Distinct pages written (what applying the whole set rewrites; the catch-up's measure of how far behind it is). */
  distinctPages: number;
  /** Page images over all commits (bytes sent = this × page size). */
  pageImages: number;
}

/** Follows one shard's files: a warm copy, then its commits. Not thread-safe; one per move. */
export class WalFollower {
  readonly #path: string;
  readonly #pins: PinConnection[] = [];
  #state = new DbHashState();
  #position: WalPosition | null = null;
  #info: SnapshotInfo | undefined;
  #closed = false;
  /** The follower's descriptor of the live database file, from {@link open} to {@link close}. */
  #fd: number | undefined;
  readonly #liveFile: { borrow(): number; giveBack(fd: number): void };
  /** {@link snapshot} reads in progress. */
  #reading = 0;

  /**
   * `liveFile` lends the follower its descriptor of the live database file (in a node, the pool's:
   * `ShardPool.borrowLiveFile`); closing one of its own while the tenant's handles are open would drop
   * the process's SQLite locks on the file (@domicile/shard live-file.ts). Default: opened and closed here.
   */
  constructor(dbPath: string, opts: { liveFile?: { borrow(): number; giveBack(fd: number): void } } = {}) {
    this.#path = dbPath;
    this.#liveFile = opts.liveFile ?? { borrow: () => openSync(dbPath, 'r'), giveBack: (fd) => closeSync(fd) };
  }

  /** Pins the shard's current state and describes the copy {@link snapshot} will stream. */
  open(): SnapshotInfo {
    this.#pin();
    // Held until close(): see the constructor.
    const fd = this.#fd ??= this.#liveFile.borrow();
    const hdr = new Uint8Array(100);
    if (readSync(fd, hdr, 0, 100, 0) < 100) throw new DomicileError('INTERNAL', 'the source shard file is too short to be a database');
    const pageSize = headerPageSize(hdr);
    const pageCount = Math.floor(fstatSync(fd).size / pageSize);
    this.#info = { pageSize, pageCount, bytes: pageSize * pageCount };
    this.#state = new DbHashState(Math.max(1, pageCount));
    return this.#info;
  }

  /**
   * The database file as of {@link open}, in chunks of whole pages (a page a
   * concurrent truncation cut short reads as zeros; the commits that follow
   * drop or rewrite it). Hashes every page on the way and yields to the event
   * loop between chunks.
   */
  async *snapshot(chunkPages = 256): AsyncGenerator<Uint8Array> {
    const info = this.#info;
    const fd = this.#fd;
    if (!info || fd === undefined || this.#closed) throw new DomicileError('INTERNAL', 'snapshot() on a follower that is not open');
    // close() meanwhile leaves the descriptor to this read's end (its number must not be reused under a read).
    this.#reading++;
    try {
      for (let first = 1; first <= info.pageCount; first += chunkPages) {
        if (this.#closed) throw new DomicileError('INTERNAL', 'the follower was closed during the copy');
        const n = Math.min(chunkPages, info.pageCount - first + 1);
        const buf = Buffer.alloc(n * info.pageSize);
        let done = 0;
        while (done < buf.byteLength) {
          const bytesRead = await readAt(fd, buf, done, buf.byteLength - done, (first - 1) * info.pageSize + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        for (let i = 0; i < n; i++) this.#state.setPage(first + i, buf.subarray(i * info.pageSize, (i + 1) * info.pageSize));
        yield buf;
      }
    } finally {
      this.#reading--;
      if (this.#closed) this.#releaseFile();
    }
  }

  /**
   * Every commit since the previous call (since the copy on the first call),
   * or null when there is none. Re-pins first, so the log cannot restart
   * between two reads.
   */
  changes(): ShardChanges | null {
    const info = this.#info;
    if (!info || this.#closed) throw new DomicileError('INTERNAL', 'changes() on a follower that is not open');
    this.#pin();
    try {
      return this.#read(info);
    } finally {
      // Keep only the newest pin: it was opened before the read, so it covers every frame read.
      while (this.#pins.length > 1) this.#pins.shift()!.close();
    }
  }

  /** The shard's txid as SQLite sees it through the newest pin (`_domicile_meta`). */
  txid(): number {
    const pin = this.#pins.at(-1);
    if (!pin) throw new DomicileError('INTERNAL', 'txid() on a follower that is not open');
    const row = pin.prepare('SELECT txid FROM main._domicile_meta WHERE id = 1').get() as { txid: number } | undefined;
    if (!row) throw new DomicileError('INTERNAL', 'the source shard has no _domicile_meta row');
    return row.txid;
  }

  /** Rolling checksum of everything streamed and read so far. */
  get checksum(): bigint { return this.#state.checksum; }
  /** Database size in pages as of the latest read. */
  get pageCount(): number { return this.#state.pageCount; }

  /** Ends every read transaction and closes the pins (never checkpoints: read-only). Idempotent. */
  close(): void {
    this.#closed = true;
    for (const p of this.#pins.splice(0)) {
      try { p.close(); } catch { /* closing */ }
    }
    this.#releaseFile();
  }

  #releaseFile(): void {
    if (this.#fd === undefined || this.#reading > 0) return;
    const fd = this.#fd;
    this.#fd = undefined;
    this.#liveFile.giveBack(fd);
  }

  #pin(): void {
    const db = new Database(this.#path, { readonly: true, fileMustExist: true }) as unknown as PinConnection;
    try {
      db.exec('BEGIN');
      // A read transaction starts at its first read.
      db.prepare('SELECT count(*) FROM main.sqlite_master').get();
    } catch (err) {
      db.close();
      throw new DomicileError('INTERNAL', 'cannot open a read transaction on the source shard', {}, { cause: err });
    }
    this.#pins.push(db);
  }

  #read(info: SnapshotInfo): ShardChanges | null {
    let fd: number;
    try {
      fd = openSync(`${this.#path}-wal`, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      let res = this.#position ? readWal(fd, this.#position) : readWal(fd);
      if (res.kind === 'restart') {
        if (res.reason === 'format-changed') throw new DomicileError('INTERNAL', 'the source WAL changed page size or format during the move');
        // A new log: the old one was folded whole into the file (see the file comment), so read this one from its start.
        res = readWal(fd);
      }
      if (res.kind !== 'frames') return null;
      if (res.header.pageSize !== info.pageSize) throw new DomicileError('INTERNAL', 'the source WAL page size differs from the database');
      this.#position = res.position;
      if (res.commits === 0) return null;
      const preChecksum = this.#state.checksum;
      const commits: CommitChange[] = [];
      const distinct = new Set<number>();
      let pageImages = 0;
      let pages = new Map<number, Uint8Array>();
      for (const f of res.frames) {
        pages.set(f.pgno, f.data);
        if (f.commitSize === 0) continue;
        const sorted = [...pages.entries()].filter(([p]) => p <= f.commitSize).sort((a, b) => a[0] - b[0]).map(([pgno, data]) => ({ pgno, data }));
        for (const p of sorted) distinct.add(p.pgno);
        pageImages += sorted.length;
        const postChecksum = applyTransactionHashes(this.#state, { truncateTo: f.commitSize, commitSize: f.commitSize, pages: sorted });
        commits.push({ commitSize: f.commitSize, pages: sorted, postChecksum });
        pages = new Map();
      }
      return { commits, preChecksum, postChecksum: this.#state.checksum, pageHash: this.#state.pageHash, distinctPages: distinct.size, pageImages };
    } finally {
      closeSync(fd);
    }
  }
}
