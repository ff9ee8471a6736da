/**
 * The shipper core: turns the committed frames a shard's WAL gained since the
 * last capture into one segment. It runs on the worker thread that owns the
 * connection, synchronously after a commit (or a group of commits), and hands
 * the encoded bytes to whoever uploads them; only after the upload is durable
 * may the WAL be checkpointed (DESIGN §8). It reads the `-wal` and database
 * files directly and never touches the connection.
 *
 * Txids: each WAL commit's txid is read from the `_domicile_meta` row in the
 * page images as of that commit (docs/replication-format.md, "Attributing
 * txids"). Commits that do not move the txid (a VACUUM or PRAGMA runs in
 * autocommit before its own txid bump) belong to the next commit that does.
 */
import { closeSync, existsSync, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { DomicileError } from '@domicile/errors';
import { applyTransactionHashes, DbHashState, DEFAULT_PAGE_HASH, describeChecksum, type DbChecksum, type PageHashId } from './checksum.ts';
import type { CompressionId } from './compression.ts';
import { DbFile } from './db-file.ts';
import { DomicileMetaReader, readDomicileMeta, type DomicileMeta } from './domicile-meta.ts';
import { segmentKey } from './keys.ts';
import { encodeSegment, encodeSegmentAsync, type EncodeOptions, type ObjectIdentity, type PageImage, type SegmentHeader, type SegmentTransaction } from './segment.ts';
import { positionAfter, ReadBuffer, readWal, WAL_FRAME_HEADER_SIZE, walStartPosition, type WalFrame, type WalPosition, type WalReadResult } from './wal-reader.ts';

/**
 * The WAL reads of every shipper on this thread go through one buffer: a
 * capture's frames are views into it until its segment is encoded (which
 * copies them), and captures run one at a time per thread.
 */
const walReads = new ReadBuffer();

/** Options of a shipper. */
export interface ShipperOptions extends ObjectIdentity {
  /** The shard's database file; its WAL is `dbPath + '-wal'`. */
  dbPath: string;
  compression?: CompressionId;
  /** Clock for commit times (ms). */
  now?: () => number;
  /** Page hash of a generation this shipper begins (default {@link DEFAULT_PAGE_HASH}); a resumed one keeps its own. */
  pageHash?: PageHashId;
  /**
   * An open descriptor of `dbPath` for the constructor (`beginGeneration*`, `resume`) to read the
   * live file through, at explicit positions; the caller keeps it open until the constructor returns
   * and the shipper never closes it. For later captures see {@link WalShipper.lendLiveFile}. Needed in
   * a process whose SQLite connections may have the file open: closing any descriptor of it drops
   * their locks (POSIX locks belong to the process; @domicile/shard live-file.ts,
   * `ShardPool.borrowLiveFile`). Without one the shipper opens the file when it reads and closes it
   * when it is done (a process with no SQLite connection to it: tests, tools).
   */
  liveFd?: number;
}

/** Where a generation's replicated history ends (the newest object's txid and checksum). */
export interface GenerationTip {
  txid: number;
  checksum: DbChecksum;
  /** The page hash the generation's checksums sum (its objects record it). */
  pageHash: PageHashId;
}

/** Result of {@link WalShipper.capture}. */
export type CaptureResult =
  | {
      kind: 'segment';
      /** Object key (carries tenant, incarnation, epoch, generation, txid range). */
      key: string;
      /** Encoded segment; upload it as is (write once), then call {@link WalShipper.acknowledge}. */
      bytes: Uint8Array;
      minTxid: number;
      maxTxid: number;
      postChecksum: DbChecksum;
      pageCount: number;
      /** WAL commits after `maxTxid` that did not move the txid yet (held back). */
      pendingCommits: number;
      /** Bytes of the current log read so far (through its last shipped commit): what a checkpoint would fold. */
      walBytes: number;
    }
  | { kind: 'none'; pendingCommits: number; walBytes: number }
  /**
   * The WAL is not the continuation of what was shipped (it changed behind the
   * shipper's back, or a commit's txid is not the next one): stop this
   * generation; checkpoint and begin a new one.
   */
  | { kind: 'restart'; reason: string };

/** A captured segment before encoding (internal). */
interface UnencodedSegment extends Omit<Extract<CaptureResult, { kind: 'segment' }>, 'kind' | 'bytes'> {
  kind: 'unencoded';
  header: SegmentHeader;
  txs: SegmentTransaction[];
}

interface Unit {
  txid: number;
  truncateTo: number;
  commitSize: number;
  pages: Map<number, Uint8Array>;
  lastFrame: WalFrame;
  frames: WalFrame[];
}

/**
 * One shipper per open shard handle and generation. Not thread-safe; keep it
 * on the thread that commits. Close it with the handle.
 */
export class WalShipper {
  readonly #opts: ShipperOptions;
  /** The caller's descriptor of the live file, while lent ({@link lendLiveFile}; `opts.liveFd` during construction). */
  #lent: number | undefined;
  readonly #walPath: string;
  /** The live database file: opened by a capture when it needs a page, closed when the capture ends (and by {@link releaseFile}). */
  #db: DbFile | null;
  readonly #pageSize: number;
  /** Device and inode of the database file this shipper's state describes. */
  readonly #fileId: string;
  readonly #state: DbHashState;
  #txid: number;
  #shippedTxid: number;
  /** Where the next capture reads; null: accept any log from its start (the WAL was empty). */
  #position: WalPosition | null = null;
  /** Latest committed-and-consumed frame (page data offset) per page in the current log. */
  #walIndex = new Map<number, number>();
  /** Highest page number in {@link #walIndex} (0 when empty): a commit that shrinks the database below it drops entries. */
  #walIndexTop = 0;
  /** Set by a checkpoint the caller ran when everything was shipped: the next log may have new salts. */
  #expectRestart = false;
  #holds = 0;
  #closed = false;
  /** Reads the meta row after each WAL commit (remembers its root page between schema changes). */
  readonly #meta = new DomicileMetaReader();

  private constructor(opts: ShipperOptions, db: DbFile, state: DbHashState, txid: number) {
    const { liveFd, ...rest } = opts;
    this.#opts = Object.freeze(rest);
    this.#lent = liveFd;
    this.#walPath = `${opts.dbPath}-wal`;
    this.#db = db;
    this.#pageSize = db.pageSize;
    this.#fileId = fileIdentity(fstatSync(db.fd));
    this.#state = state;
    this.#txid = txid;
    this.#shippedTxid = txid;
  }

  /**
   * Start a generation at the database's current state. The caller has just
   * run a complete `PRAGMA wal_checkpoint(TRUNCATE)`: the WAL holds no
   * committed frame (else INTERNAL). Hashes every page of the file (about
   * 0.3 s per 100 MB); the snapshot of the same file must carry
   * {@link checksum} (pass it to `createSnapshot`).
   */
  static beginGeneration(opts: ShipperOptions): WalShipper {
    return idle(WalShipper.#beginGeneration(opts));
  }

  static #beginGeneration(opts: ShipperOptions): WalShipper {
    const { shipper, meta: raw } = WalShipper.#fromDbFile(opts);
    try {
      shipper.#checkMeta(raw);
      const wal = shipper.#openWal();
      if (wal !== null) {
        try {
          const res = readWal(wal);
          if (res.kind === 'frames') {
            if (res.commits > 0) throw new DomicileError('INTERNAL', 'the WAL holds committed frames; checkpoint (TRUNCATE) before beginning a generation');
            shipper.#position = walStartPosition(res.header);
          }
        } finally {
          closeSync(wal);
        }
      }
      return shipper;
    } catch (err) {
      shipper.close();
      throw err;
    }
  }

  /**
   * Start a generation from a copy of the database file taken right after a
   * complete `wal_checkpoint(TRUNCATE)` (the `-wal` was empty): hashes the
   * copy — which the caller may do off the tenant's queue while it writes on —
   * and reads the live `dbPath` from then on. The live file must not be
   * checkpointed meanwhile (replication's connections never checkpoint on
   * close); the live WAL's first log is then read from its start, whatever
   * commits it gained since the copy. The snapshot is made from the copy.
   */
  static beginGenerationFromCopy(opts: ShipperOptions, copyPath: string): WalShipper {
    return idle(WalShipper.#beginGenerationFromCopy(opts, copyPath));
  }

  static #beginGenerationFromCopy(opts: ShipperOptions, copyPath: string): WalShipper {
    const { shipper, meta } = WalShipper.#fromDbFile(opts, copyPath);
    return WalShipper.#checked(shipper, meta);
  }

  /** `shipper` if `meta` names its tenant and incarnation; closed and thrown otherwise. */
  static #checked(shipper: WalShipper, meta: DomicileMeta | null): WalShipper {
    try {
      shipper.#checkMeta(meta);
      return shipper;
    } catch (err) {
      shipper.close();
      throw err;
    }
  }

  /**
   * {@link beginGenerationFromCopy} for the event loop: hashes the copy in
   * slices of `slicePages` pages (default 512, ~2 MiB) and yields between
   * them, so a large database delays other work by one slice at a time.
   */
  static async beginGenerationFromCopyAsync(opts: ShipperOptions, copyPath: string, slicePages = 512): Promise<WalShipper> {
    return idle(await WalShipper.#beginGenerationFromCopyAsync(opts, copyPath, slicePages));
  }

  static async #beginGenerationFromCopyAsync(opts: ShipperOptions, copyPath: string, slicePages: number): Promise<WalShipper> {
    const fd = openSync(copyPath, 'r');
    let state: DbHashState;
    let meta: DomicileMeta | null;
    let pageSize: number;
    try {
      const db = new DbFile(fd);
      pageSize = db.pageSize;
      const pages = db.pageCount();
      state = new DbHashState(Math.max(1, pages), opts.pageHash ?? DEFAULT_PAGE_HASH);
      for (let p = 1; p <= pages; p++) {
        state.setPage(p, db.page(p)!);
        if (p % slicePages === 0) await new Promise<void>((r) => setImmediate(r));
      }
      meta = readDomicileMeta((p) => (p <= pages ? db.page(p) : undefined));
    } finally {
      closeSync(fd);
    }
    const liveFd = openLive(opts);
    let shipper: WalShipper;
    try {
      const live = new DbFile(liveFd);
      if (live.pageSize !== pageSize) throw new DomicileError('INTERNAL', 'the copy and the live database differ in page size');
      shipper = new WalShipper(opts, live, state, meta?.txid ?? 0);
    } catch (err) {
      closeLive(opts, liveFd);
      throw err;
    }
    return WalShipper.#checked(shipper, meta);
  }

  /**
   * Continue a generation after a restart: replays the WAL onto the database
   * file up to `tip.txid` and checks the checksum. Returns null when the local
   * files do not continue the tip (begin a new generation then).
   */
  static resume(opts: ShipperOptions, tip: GenerationTip): WalShipper | null {
    return idle(WalShipper.#resume(opts, tip));
  }

  static #resume(opts: ShipperOptions, tip: GenerationTip): WalShipper | null {
    // A generation keeps the page hash it began with (one begun by an older build: SHA-256).
    const { shipper, meta: raw } = WalShipper.#fromDbFile(opts, opts.dbPath, tip.pageHash);
    try {
      const meta = shipper.#checkMeta(raw);
      if (meta.txid > tip.txid) return shipper.#discard();
      if (meta.txid === tip.txid) {
        if (shipper.#state.checksum !== tip.checksum) return shipper.#discard();
      }
      const wal = shipper.#openWal();
      if (wal === null) return meta.txid === tip.txid ? shipper : shipper.#discard();
      try {
        const res = readWal(wal);
        if (res.kind !== 'frames') return meta.txid === tip.txid ? shipper : shipper.#discard();
        const start = walStartPosition(res.header);
        shipper.#position = start;
        if (meta.txid === tip.txid) {
          if (res.commits === 0) return shipper;
          // The file is at the tip and the log holds commits: ship them if each continues the txid
          // (new writes since a checkpoint); frames of an old log already in the file would not.
          try {
            shipper.#group(wal, start, res.frames, Number.MAX_SAFE_INTEGER);
          } catch (err) {
            if ((err as { code?: unknown }).code !== 'TXID_DISCONTINUITY') throw err;
            // A log a checkpoint folded without truncating it (RESTART) and no write restarted before the
            // node stopped: nothing in it is new. Continue after it; the next write restarts or extends it.
            if (!shipper.#logInFile(res)) return shipper.#discard();
            shipper.#position = res.position;
            shipper.#expectRestart = true;
          }
          return shipper;
        }
        const { units } = shipper.#group(wal, start, res.frames, tip.txid);
        const upTo = units.filter((u) => u.txid <= tip.txid);
        if (upTo.length === 0 || upTo.at(-1)!.txid !== tip.txid) return shipper.#discard();
        for (const u of upTo) shipper.#apply(u, start);
        if (shipper.#state.checksum !== tip.checksum) return shipper.#discard();
        shipper.#shippedTxid = shipper.#txid;
        return shipper;
      } finally {
        closeSync(wal);
      }
    } catch (err) {
      shipper.close();
      throw err;
    }
  }

  /**
   * True when the log adds nothing to the database file: the file has the
   * size of the log's last commit and holds the last image of every page the
   * log's committed frames carry.
   */
  #logInFile(res: WalReadResult & { kind: 'frames' }): boolean {
    const size = res.frames.at(-1)?.commitSize ?? 0;
    const db = this.#file();
    if (size === 0 || db.pageCount() !== size) return false;
    const last = new Map<number, Uint8Array>();
    for (const f of res.frames) last.set(f.pgno, f.data);
    for (const [pgno, data] of last) {
      if (pgno > size) continue;
      const page = db.page(pgno);
      if (!page || Buffer.compare(page, data) !== 0) return false;
    }
    return true;
  }

  static #fromDbFile(opts: ShipperOptions, hashPath = opts.dbPath, pageHash: PageHashId = opts.pageHash ?? DEFAULT_PAGE_HASH): { shipper: WalShipper; meta: DomicileMeta | null } {
    const fd = hashPath === opts.dbPath ? openLive(opts) : openSync(hashPath, 'r');
    let fdOpen = true;
    let liveFd: number | undefined;
    try {
      const db = new DbFile(fd);
      const pages = db.pageCount();
      const state = new DbHashState(Math.max(1, pages), pageHash);
      for (let p = 1; p <= pages; p++) state.setPage(p, db.page(p)!);
      const meta = readDomicileMeta((p) => (p <= pages ? db.page(p) : undefined));
      let live = db;
      if (hashPath !== opts.dbPath) {
        liveFd = openLive(opts);
        live = new DbFile(liveFd);
        if (live.pageSize !== db.pageSize) throw new DomicileError('INTERNAL', 'the copy and the live database differ in page size');
        fdOpen = false;
        closeSync(fd);
      }
      return { shipper: new WalShipper(opts, live, state, meta?.txid ?? 0), meta };
    } catch (err) {
      if (liveFd !== undefined) closeLive(opts, liveFd);
      // Not twice: the number may already belong to another file.
      if (fdOpen) (hashPath === opts.dbPath ? closeLive(opts, fd) : closeSync(fd));
      throw err;
    }
  }

  #discard(): null {
    this.close();
    return null;
  }

  #checkMeta(meta: DomicileMeta | null): DomicileMeta {
    if (!meta) throw new DomicileError('INTERNAL', 'not a Domicile shard (no _domicile_meta row)');
    if (meta.tenant !== this.#opts.tenant || meta.incarnation !== this.#opts.incarnation) {
      throw new DomicileError('INTERNAL', 'shard file belongs to another tenant or incarnation');
    }
    return meta;
  }

  /** Last txid captured into a segment (or the generation's start). */
  get txid(): number { return this.#txid; }
  /** Last txid whose segment the caller acknowledged as stored. */
  get shippedTxid(): number { return this.#shippedTxid; }
  /** Database checksum at {@link txid}. */
  get checksum(): DbChecksum { return this.#state.checksum; }
  /** The page hash {@link checksum} sums: {@link DEFAULT_PAGE_HASH} for a generation this build began, else the resumed one's. */
  get pageHash(): PageHashId { return this.#state.pageHash; }
  /** Database size in pages at {@link txid}. */
  get pageCount(): number { return this.#state.pageCount; }
  /** Page size of the database. */
  get pageSize(): number { return this.#pageSize; }

  #openWal(): number | null {
    if (!existsSync(this.#walPath)) return null;
    try {
      return openSync(this.#walPath, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /**
   * Read the WAL's new committed frames and encode them as one segment of
   * the transactions they complete. Advances {@link txid} at once (the next
   * capture continues after it, before this one is uploaded); upload the
   * segments in order and {@link acknowledge} each.
   */
  capture(): CaptureResult {
    try {
      const c = this.#capture();
      if (c.kind !== 'unencoded') return c;
      const { header, txs, ...rest } = c;
      return { ...rest, kind: 'segment', bytes: encodeSegment(header, txs, this.#encodeOptions()) };
    } finally {
      walReads.trim();
      this.releaseFile();
    }
  }

  /**
   * {@link capture} with the segment's page data compressed on the libuv
   * thread pool: the shipper's state advances at once (synchronously, like
   * `capture`), only the encoding is awaited. Do not call `capture` again
   * before it settles.
   */
  async captureAsync(): Promise<CaptureResult> {
    let encoding: Promise<Uint8Array>;
    let rest: Omit<UnencodedSegment, 'header' | 'txs'>;
    try {
      const c = this.#capture();
      if (c.kind !== 'unencoded') return c;
      const { header, txs, ...others } = c;
      rest = others;
      // Copies the page images (views into the shared read buffer) before it returns.
      encoding = encodeSegmentAsync(header, txs, this.#encodeOptions());
    } finally {
      walReads.trim();
      this.releaseFile();
    }
    return { ...rest, kind: 'segment', bytes: await encoding };
  }

  #encodeOptions(): EncodeOptions {
    return this.#opts.compression === undefined ? {} : { compression: this.#opts.compression };
  }

  #capture(): Exclude<CaptureResult, { kind: 'segment' }> | UnencodedSegment {
    if (this.#closed) throw new DomicileError('INTERNAL', 'shipper closed');
    // A file swapped in under this path (a restore in place, a move) is not this generation's: never read its WAL.
    let id: string;
    try {
      id = fileIdentity(statSync(this.#opts.dbPath));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'restart', reason: 'db-missing' };
      throw err;
    }
    if (id !== this.#fileId) return { kind: 'restart', reason: 'db-replaced' };
    const wal = this.#openWal();
    if (wal === null) {
      if (this.#position === null || this.#expectRestart) return { kind: 'none', pendingCommits: 0, walBytes: 0 };
      return { kind: 'restart', reason: 'wal-missing' };
    }
    try {
      // Again now that the log is open: a swap between the first check and the open may have given us
      // the new file's log (the shipper may run on another thread than the swap). After this check the
      // open descriptor pins the log we read, whatever is renamed later.
      let again: string | undefined;
      try { again = fileIdentity(statSync(this.#opts.dbPath)); } catch { /* gone: below */ }
      if (again !== this.#fileId) return { kind: 'restart', reason: again === undefined ? 'db-missing' : 'db-replaced' };
      let from = this.#position;
      let res = from ? readWal(wal, from, walReads) : readWal(wal, undefined, walReads);
      if (res.kind === 'restart') {
        if (!this.#expectRestart) return { kind: 'restart', reason: `wal-${res.reason}` };
        // Our own checkpoint folded every shipped frame into the file and SQLite began a new log.
        this.#expectRestart = false;
        this.#walIndex.clear();
        this.#walIndexTop = 0;
        this.#position = null;
        from = null;
        res = readWal(wal, undefined, walReads);
      }
      if (res.kind === 'empty') return { kind: 'none', pendingCommits: 0, walBytes: 0 };
      if (res.kind === 'restart') return { kind: 'restart', reason: `wal-${res.reason}` };
      const start = from ?? walStartPosition(res.header);
      if (res.commits > 0) this.#expectRestart = false;
      let grouped: { units: Unit[]; pending: number };
      try {
        grouped = this.#group(wal, start, res.frames, Number.MAX_SAFE_INTEGER);
      } catch (err) {
        if ((err as { code?: unknown }).code === 'TXID_DISCONTINUITY') return { kind: 'restart', reason: (err as Error).message };
        throw err;
      }
      const { units, pending } = grouped;
      this.#position = start;
      // A log our checkpoint folded (RESTART keeps its frames in the file until a write restarts it) holds
      // nothing to checkpoint again.
      if (units.length === 0) return { kind: 'none', pendingCommits: pending, walBytes: this.#expectRestart ? 0 : this.#position.offset };
      const preChecksum = this.#state.checksum;
      const prePageCount = this.#state.pageCount;
      const now = this.#opts.now ?? Date.now;
      const time = now();
      const txs: SegmentTransaction[] = units.map((u) => {
        const pages = sortedPages(u.pages);
        const postChecksum = this.#apply(u, start, pages);
        return { txid: u.txid, time, truncateTo: u.truncateTo, commitSize: u.commitSize, postChecksum, pages };
      });
      const minTxid = txs[0]!.txid;
      const maxTxid = txs.at(-1)!.txid;
      return {
        kind: 'unencoded', header: { ...this.#identity(), pageSize: this.#pageSize, pageHash: this.#state.pageHash, preChecksum, prePageCount }, txs,
        key: segmentKey(this.#identity(), minTxid, maxTxid), minTxid, maxTxid,
        postChecksum: this.#state.checksum, pageCount: this.#state.pageCount, pendingCommits: pending,
        walBytes: this.#position!.offset,
      };
    } finally {
      closeSync(wal);
    }
  }

  #identity(): ObjectIdentity {
    const { tenant, incarnation, generation, epoch } = this.#opts;
    return { tenant, incarnation, generation, epoch };
  }

  /**
   * Group committed frames into transactions by the txid each commit leaves in
   * `_domicile_meta`. Units up to `stopAfter` are returned; trailing commits
   * that did not move the txid are counted as pending. Throws an error with
   * code TXID_DISCONTINUITY when a commit's txid is not the current or the next.
   */
  #group(wal: number, start: WalPosition, frames: WalFrame[], stopAfter: number): { units: Unit[]; pending: number } {
    const overlay = new Map<number, Uint8Array>();
    const units: Unit[] = [];
    let txid = this.#txid;
    let cur: Unit | null = null;
    let pendingCommits = 0;
    let size = this.#state.pageCount;
    const getPage = (pgno: number): Uint8Array | undefined => {
      if (pgno < 1 || pgno > size) return undefined;
      const o = overlay.get(pgno);
      if (o) return o;
      // Pages read from before this capture's frames stay as read until a frame replaces them in the
      // overlay: keep them there, so that the meta row's path (page 1 and the table's root) is read
      // once per capture, not once per commit.
      let read: Uint8Array | undefined;
      const at = this.#walIndex.get(pgno);
      if (at !== undefined) {
        const out = new Uint8Array(this.#pageSize);
        if (readSync(wal, out, 0, out.byteLength, at) === out.byteLength) read = out;
      } else {
        read = this.#file().page(pgno);
      }
      if (read) overlay.set(pgno, read);
      return read;
    };
    for (const f of frames) {
      overlay.set(f.pgno, f.data);
      cur ??= { txid: txid + 1, truncateTo: Number.MAX_SAFE_INTEGER, commitSize: 0, pages: new Map(), lastFrame: f, frames: [] };
      cur.pages.set(f.pgno, f.data);
      cur.frames.push(f);
      if (f.commitSize === 0) continue;
      size = f.commitSize;
      cur.truncateTo = Math.min(cur.truncateTo, f.commitSize);
      cur.commitSize = f.commitSize;
      cur.lastFrame = f;
      for (const p of cur.pages.keys()) if (p > f.commitSize) cur.pages.delete(p);
      let meta: DomicileMeta | null;
      try {
        meta = this.#meta.read(getPage);
      } catch (err) {
        throw discontinuity(`unreadable _domicile_meta after WAL frame at ${f.offset}: ${(err as Error).message}`);
      }
      if (!meta || meta.tenant !== this.#opts.tenant || meta.incarnation !== this.#opts.incarnation) {
        throw discontinuity('a WAL commit without this tenant\'s _domicile_meta row');
      }
      if (meta.txid === txid) {
        pendingCommits++;
        continue;
      }
      if (meta.txid !== txid + 1) throw discontinuity(`txid ${meta.txid} follows ${txid} in the WAL`);
      if (meta.txid > stopAfter) break;
      txid = meta.txid;
      units.push(cur);
      cur = null;
      pendingCommits = 0;
    }
    return { units, pending: pendingCommits };
  }

  /** Apply a unit to the hash state, the WAL index and the position; returns the post checksum. */
  #apply(u: Unit, start: WalPosition, sorted?: PageImage[]): DbChecksum {
    const pages = sorted ?? sortedPages(u.pages);
    const sum = applyTransactionHashes(this.#state, { truncateTo: u.truncateTo, commitSize: u.commitSize, pages });
    for (const f of u.frames) {
      this.#walIndex.set(f.pgno, f.offset + WAL_FRAME_HEADER_SIZE);
      if (f.pgno > this.#walIndexTop) this.#walIndexTop = f.pgno;
    }
    if (this.#walIndexTop > u.commitSize) {
      for (const p of this.#walIndex.keys()) if (p > u.commitSize) this.#walIndex.delete(p);
      this.#walIndexTop = u.commitSize;
    }
    this.#position = positionAfter(this.#position ?? start, u.lastFrame);
    this.#txid = u.txid;
    return sum;
  }

  /** The segment ending at `maxTxid` is durably stored. Segments must be acknowledged in order. */
  acknowledge(maxTxid: number): void {
    if (maxTxid > this.#txid || maxTxid < this.#shippedTxid) {
      throw new DomicileError('INTERNAL', `acknowledged txid ${maxTxid} outside ${this.#shippedTxid}..${this.#txid}`);
    }
    this.#shippedTxid = maxTxid;
  }

  /** Keep {@link checkpointAllowed} false (e.g. while a snapshot reads the file); call the returned function to release. */
  hold(): () => void {
    this.#holds++;
    let released = false;
    return () => {
      if (!released) { released = true; this.#holds--; }
    };
  }

  /**
   * True when a checkpoint loses nothing: every committed frame of the WAL is
   * in an acknowledged segment and no hold is active. Call it on the thread
   * that commits, right before `PRAGMA wal_checkpoint(TRUNCATE)` or
   * `(RESTART)`, with no commit in between; then report the result with
   * {@link noteCheckpoint}. From another thread, use {@link checkpointMark}.
   */
  checkpointAllowed(): boolean {
    return this.checkpointMark() !== null;
  }

  /**
   * Like {@link checkpointAllowed}, for a checkpoint that runs later on
   * another thread: null when a checkpoint would lose something, else where
   * the log stands — its salts and the offset after its last frame, which the
   * checkpointing thread checks right before it checkpoints
   * (`walChangedSince` of @domicile/shard: a commit in between skips the
   * checkpoint). A missing or empty log is `{salt1: 0, salt2: 0, offset: 0}`,
   * which that check calls changed: there is nothing to fold anyway.
   */
  checkpointMark(): WalMark | null {
    if (this.#closed || this.#holds > 0 || this.#shippedTxid !== this.#txid) return null;
    const wal = this.#openWal();
    if (wal === null) return NO_LOG;
    try {
      const res = this.#position ? readWal(wal, this.#position) : readWal(wal);
      if (res.kind === 'empty') return NO_LOG;
      if (res.kind === 'restart') return this.#expectRestart && res.reason !== 'format-changed' ? freshLogMark(wal) : null;
      return res.commits === 0 ? markOf(res) : null;
    } finally {
      closeSync(wal);
    }
  }

  /**
   * Report a checkpoint the caller ran after {@link checkpointAllowed}: pass
   * the row of `PRAGMA wal_checkpoint(TRUNCATE)`. Whether or not it completed
   * (`busy`), SQLite may start a new log (new salts) at the next write, and the
   * shipper then continues from the log's start instead of reporting a restart.
   */
  noteCheckpoint(_result: { busy: number; log?: number; checkpointed?: number }): void {
    this.#expectRestart = true;
  }

  /** The live database file, reopened after {@link releaseFile}. */
  #file(): DbFile {
    if (this.#db) return this.#db;
    const fd = this.#lent ?? openSync(this.#opts.dbPath, 'r');
    try {
      if (fileIdentity(fstatSync(fd)) !== this.#fileId) throw new DomicileError('INTERNAL', 'the database file was replaced under the shipper');
      const db = new DbFile(fd, this.#pageSize);
      this.#db = db;
      return db;
    } catch (err) {
      if (fd !== this.#lent) closeSync(fd);
      throw err;
    }
  }

  /**
   * Close the database file until the next capture needs it: a node ships
   * for many more tenants than it keeps open, and an idle shipper must not
   * hold a file descriptor (the handle cache bounds those). The shipper's
   * state (position, page hashes) stays. Captures and the constructors do
   * this themselves when they end; calling it again is harmless.
   */
  releaseFile(): void {
    if (!this.#db) return;
    const fd = this.#db.fd;
    this.#db = null;
    if (fd !== this.#lent) closeSync(fd);
  }

  /**
   * Read the live database file through `fd` (the caller's, open until it lends another or
   * `undefined`) instead of opening it: call around each capture in a process whose SQLite
   * connections may have the file open (see {@link ShipperOptions.liveFd}). A capture lets go of the
   * file when it ends, so the descriptor may be taken back right after it.
   */
  lendLiveFile(fd: number | undefined): void {
    if (this.#db && this.#db.fd !== fd) this.releaseFile();
    this.#lent = fd;
  }

  /** Release the file descriptors. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.releaseFile();
  }

  /** For messages. */
  toString(): string {
    return `WalShipper(${this.#opts.tenant} txid ${this.#txid} checksum ${describeChecksum(this.#state.checksum, this.#state.pageHash)})`;
  }
}

/** A descriptor of the live database file: the caller's (see {@link ShipperOptions.liveFd}), else a new one. */
function openLive(opts: ShipperOptions): number {
  return opts.liveFd ?? openSync(opts.dbPath, 'r');
}

/** Close a descriptor from {@link openLive}: never the caller's. */
function closeLive(opts: ShipperOptions, fd: number): void {
  if (fd !== opts.liveFd) closeSync(fd);
}

/** A new shipper without its database file open: it holds it only while it captures. */
function idle<T extends WalShipper | null>(shipper: T): T {
  shipper?.releaseFile();
  shipper?.lendLiveFile(undefined); // the constructor's descriptor goes back to the caller
  return shipper;
}

/** Where a shipper stopped reading a `-wal` (the shape of `WalMark` in @domicile/shard). */
export interface WalMark {
  salt1: number;
  salt2: number;
  offset: number;
}

const NO_LOG: WalMark = Object.freeze({ salt1: 0, salt2: 0, offset: 0 });

function markOf(res: WalReadResult & { kind: 'frames' }): WalMark {
  return { salt1: res.header.salt1, salt2: res.header.salt2, offset: res.lastCommitOffset };
}

/** A log restarted since the last read: its mark when it holds no commit yet, else null. */
function freshLogMark(wal: number): WalMark | null {
  const res = readWal(wal);
  if (res.kind !== 'frames') return NO_LOG;
  return res.commits === 0 ? markOf(res) : null;
}

function discontinuity(message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code: 'TXID_DISCONTINUITY' });
}

function fileIdentity(st: Stats): string {
  return `${st.dev}:${st.ino}`;
}

/**
 * A transaction's page images ascending by page number. SQLite writes a
 * commit's frames in page order, so they usually are already; only otherwise
 * (a cache spill, commits joined into one transaction) are they sorted:
 * `Array.prototype.sort` allocates a work array per call, which was the
 * largest allocation of a capture.
 */
function sortedPages(pages: Map<number, Uint8Array>): PageImage[] {
  const out: PageImage[] = [];
  let ordered = true;
  let last = 0;
  pages.forEach((data, pgno) => {
    if (pgno < last) ordered = false;
    last = pgno;
    out.push({ pgno, data });
  });
  return ordered ? out : out.sort(byPageNumber);
}

function byPageNumber(a: PageImage, b: PageImage): number {
  return a.pgno - b.pgno;
}
