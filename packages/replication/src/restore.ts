/**
 * Restore: rebuild a plain SQLite file from one generation in a bucket —
 * newest snapshot at or before the target, then segments in txid order, every
 * step checked (continuity, identity, sizes, the checksums each object records
 * against the one before it, trailers), then the finished file hashed against
 * the checksum the backup records at the restored point while `PRAGMA
 * integrity_check` runs. Also the listing of a tenant's generations.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsync, fsyncSync, ftruncateSync, openSync, renameSync, rmSync, statSync, writeSync, writevSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import Database from 'better-sqlite3';
import { DomicileError } from '@domicile/errors';
import { compareKeys, type ObjectStore } from '@domicile/object-store';
import { backupInvalid } from './binary.ts';
import { describeChecksum, formatChecksum, pageHashName, type DbChecksum, type PageHashId } from './checksum.ts';
import { fileChecksum } from './file-checksum.ts';
import { RestoredPages } from './restore-pages.ts';
import { generationPrefix, generationsPrefix, parseKey, type GenerationRef, type ParsedKey } from './keys.ts';
import { decodeSegment, type DecodedSegment, type PageImage } from './segment.ts';
import { readSnapshot, readSnapshotHeader, type SnapshotHeader } from './snapshot.ts';

/** What to restore: a txid, a point in time (the last transaction committed at or before it), or the newest state. */
export type RestoreTarget = { txid: number } | { time: Date | number } | 'latest';

/** Options of {@link restore}. */
export interface RestoreOptions {
  store: ObjectStore;
  /** The generation to follow (the directory's current epoch's; DESIGN §8). */
  ref: GenerationRef;
  target?: RestoreTarget;
  /** Output file; written as `<out>.restore-*.tmp` beside it, then renamed. An existing file is replaced. */
  outPath: string;
}

/** What a restore produced. */
export interface RestoreResult {
  txid: number;
  /** Commit time of `txid` (ms). */
  time: number;
  /** Size of the file written. */
  bytes: number;
  pages: number;
  checksum: DbChecksum;
  /** Snapshot and segments applied. */
  objects: number;
}

interface SnapEntry { key: string; txid: number }
interface SegEntry { key: string; minTxid: number; maxTxid: number; size?: number }

async function listGeneration(store: ObjectStore, ref: GenerationRef): Promise<{ snaps: SnapEntry[]; segs: SegEntry[] }> {
  const prefix = generationPrefix(ref);
  const snaps: SnapEntry[] = [];
  const segs: SegEntry[] = [];
  for await (const e of store.list(prefix)) {
    let k: ParsedKey;
    try {
      k = parseKey(e.key);
    } catch (err) {
      throw backupInvalid(`Unexpected object ${JSON.stringify(e.key)} in a backup generation.`, { key: e.key }, err);
    }
    if (k.kind === 'snapshot') snaps.push({ key: e.key, txid: k.txid });
    else segs.push({ key: e.key, minTxid: k.minTxid, maxTxid: k.maxTxid, size: e.size });
  }
  snaps.sort((a, b) => a.txid - b.txid);
  segs.sort((a, b) => a.minTxid - b.minTxid || a.maxTxid - b.maxTxid);
  return { snaps, segs };
}

/** Read a snapshot's header only. */
export async function readSnapshotHeaderAt(store: ObjectStore, key: string): Promise<SnapshotHeader> {
  return readSnapshotHeader(await store.getStream(key), key);
}

function checkIdentity(what: string, ref: GenerationRef, h: { tenant: string; incarnation: string; generation: string; epoch: number }): void {
  if (h.tenant !== ref.tenant || h.incarnation !== ref.incarnation || h.generation !== ref.generation || h.epoch !== ref.epoch) {
    throw backupInvalid(`${what} belongs to another tenant, incarnation, generation or epoch than its key.`, { key: what });
  }
}

/**
 * Restore one generation to `outPath`. Errors: BACKUP_INVALID for a gap, an
 * overlap, a corrupt or foreign object, a checksum mismatch or a failed
 * integrity check; BAD_REQUEST for a target outside what the generation holds;
 * REPLICATION_UNAVAILABLE from the store. On any error the temp file is removed
 * and `outPath` is untouched.
 */
export async function restore(opts: RestoreOptions): Promise<RestoreResult> {
  const { store, ref } = opts;
  const target = opts.target ?? 'latest';
  const { snaps, segs } = await listGeneration(store, ref);
  if (snaps.length === 0) throw backupInvalid(`Generation ${generationPrefix(ref)} has no snapshot.`);

  const maxTxid = segs.reduce((m, s) => Math.max(m, s.maxTxid), snaps.at(-1)!.txid);
  let stopTxid = Number.MAX_SAFE_INTEGER;
  let stopTime = Number.MAX_SAFE_INTEGER;
  let snap: SnapEntry | undefined;
  if (target === 'latest') {
    snap = snaps.at(-1);
  } else if ('txid' in target) {
    if (!Number.isSafeInteger(target.txid) || target.txid < snaps[0]!.txid || target.txid > maxTxid) {
      throw new DomicileError('BAD_REQUEST', `txid ${target.txid} is outside this generation (${snaps[0]!.txid}..${maxTxid}).`, { txid: target.txid });
    }
    stopTxid = target.txid;
    snap = snaps.filter((s) => s.txid <= stopTxid).at(-1);
  } else {
    stopTime = typeof target.time === 'number' ? target.time : target.time.getTime();
    if (!Number.isFinite(stopTime)) throw new DomicileError('BAD_REQUEST', 'Invalid restore time.');
    for (let i = snaps.length - 1; i >= 0 && !snap; i--) {
      const h = await readSnapshotHeaderAt(store, snaps[i]!.key);
      if (h.time <= stopTime) snap = snaps[i];
    }
    if (!snap) throw new DomicileError('BAD_REQUEST', `No backup of this generation at or before ${new Date(stopTime).toISOString()}.`, { at: stopTime });
  }
  if (!snap) throw backupInvalid('No snapshot at or before the target.');

  const tmp = join(dirname(opts.outPath), `${basename(opts.outPath)}.restore-${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx');
  let closed = false;
  try {
    let pageSize = 0;
    const { header } = await readSnapshot(await store.getStream(snap.key), (first, pages, h) => {
      pageSize = h.pageSize;
      writeAll(fd, pages, (first - 1) * h.pageSize);
    }, snap.key);
    pageSize = header.pageSize;
    checkIdentity(snap.key, ref, header);
    if (header.txid !== snap.txid) throw backupInvalid(`${snap.key}: header txid ${header.txid} does not match its key.`);
    ftruncateSync(fd, header.pageCount * pageSize);
    const pages = new RestoredPages(header.pageCount);
    // The checksum the backup records for the state restored so far: the snapshot's, then each applied transaction's.
    let recorded = header.checksum;
    let txid = header.txid;
    let time = header.time;
    let objects = 1;
    if (time <= stopTime && txid < stopTxid) {
      const todo = segs.filter((seg) => seg.maxTxid > header.txid);
      const ahead = prefetcher(store, todo);
      for (let i = 0; i < todo.length; i++) {
        const seg = todo[i]!;
        if (txid >= stopTxid) break;
        if (seg.minTxid > txid + 1) throw backupInvalid(`Gap in the backup: txids ${txid + 1}..${seg.minTxid - 1} are missing.`, { fromTxid: txid + 1, toTxid: seg.minTxid - 1 });
        if (seg.minTxid < txid + 1) throw backupInvalid(`Overlapping segments at txid ${seg.minTxid} (${seg.key}).`, { key: seg.key });
        const done = applySegment(fd, await ahead(i), seg, ref, pages, recorded, header.pageHash, pageSize, stopTxid, stopTime);
        objects++;
        if (done.applied > 0) { txid = done.txid; time = done.time; recorded = done.checksum; }
        if (done.stopped) break;
      }
    }
    if (target !== 'latest' && 'txid' in target && txid !== target.txid) {
      throw backupInvalid(`Backup ends at txid ${txid}, before the target ${target.txid}.`);
    }
    if (pages.missingPages() > 0) throw backupInvalid(`Restored image has ${pages.missingPages()} pages never written.`);
    // The file goes to disk on the thread pool and is hashed (a large one on its own
    // thread) while SQLite checks it here; the rename below waits for all three.
    const syncing = fsyncOnPool(fd);
    const hashing = fileChecksum(tmp, pageSize, pages.pageCount, header.pageHash);
    hashing.catch(() => {}); // awaited below, after the integrity check
    let integrity: unknown;
    try {
      verifyDatabase(tmp, txid);
    } catch (err) {
      integrity = err;
    }
    const syncFailed = await syncing;
    closeSync(fd);
    closed = true;
    if (syncFailed) throw syncFailed;
    const sum = await hashing;
    if (sum !== recorded) {
      throw backupInvalid(`Restored database has checksum ${describeChecksum(sum, header.pageHash)}; the backup records ${formatChecksum(recorded)} at txid ${txid}.`, { txid });
    }
    if (integrity !== undefined) throw integrity;
    for (const s of ['-wal', '-shm']) rmSync(tmp + s, { force: true }); // left by the verifying connection, if any
    const bytes = statSync(tmp).size;
    renameSync(tmp, opts.outPath);
    fsyncDir(dirname(opts.outPath));
    return { txid, time, bytes, pages: pages.pageCount, checksum: recorded, objects };
  } catch (err) {
    if (!closed) closeSync(fd);
    for (const s of ['', '-wal', '-shm', '-journal']) rmSync(tmp + s, { force: true });
    throw err;
  }
}

/** Segments fetched ahead of the one being applied, at most this many objects... */
const PREFETCH_OBJECTS = 4;
/** ...and at most this many stored bytes (the next segment is always fetched, whatever its size). */
const PREFETCH_BYTES = 32 << 20;

/**
 * `take(i)` resolves with segment `i` of `segs` downloaded, its trailer
 * checked and every transaction's pages inflated (on the thread pool), while
 * the following segments are fetched in the background — the main thread
 * applies one segment while the next ones download and decompress. Callers
 * take in order; an error surfaces only when its segment is taken (one past a
 * PITR stop point is never read).
 */
function prefetcher(store: ObjectStore, segs: readonly SegEntry[]): (i: number) => Promise<DecodedSegment> {
  const loads = new Map<number, Promise<DecodedSegment>>();
  let next = 0;
  let bytes = 0;
  const start = (j: number): void => {
    const entry = segs[j]!;
    const p = store.get(entry.key).then(async (data) => {
      const seg = decodeSegment(data, entry.key);
      await Promise.all(seg.transactions.map((tx) => tx.loadPages()));
      return seg;
    });
    p.catch(() => {}); // observed when taken; never an unhandled rejection for one left behind
    loads.set(j, p);
    bytes += entry.size ?? 0;
  };
  return (i) => {
    while (next <= i) start(next++);
    const p = loads.get(i)!;
    loads.delete(i);
    bytes -= segs[i]!.size ?? 0;
    while (next < segs.length && loads.size < PREFETCH_OBJECTS && bytes + (segs[next]!.size ?? 0) <= PREFETCH_BYTES) start(next++);
    return p;
  };
}

function applySegment(
  fd: number, seg: DecodedSegment, entry: SegEntry, ref: GenerationRef, pages: RestoredPages, recorded: DbChecksum, pageHash: PageHashId, pageSize: number, stopTxid: number, stopTime: number,
): { applied: number; txid: number; time: number; checksum: DbChecksum; stopped: boolean } {
  checkIdentity(entry.key, ref, seg);
  if (seg.minTxid !== entry.minTxid || seg.maxTxid !== entry.maxTxid) throw backupInvalid(`${entry.key}: txid range ${seg.minTxid}..${seg.maxTxid} does not match its key.`);
  if (seg.pageSize !== pageSize) throw backupInvalid(`${entry.key}: page size ${seg.pageSize} differs from the snapshot's ${pageSize}.`);
  // A generation keeps one page hash: its checksums could not be compared otherwise.
  if (seg.pageHash !== pageHash) throw backupInvalid(`${entry.key}: checksums of page hash ${pageHashName(seg.pageHash)}; the snapshot's are ${pageHashName(pageHash)}.`, { key: entry.key });
  if (seg.preChecksum !== recorded || seg.prePageCount !== pages.pageCount) {
    throw backupInvalid(`${entry.key}: starts from checksum ${formatChecksum(seg.preChecksum)} (${seg.prePageCount} pages); the backup before it ends at ${formatChecksum(recorded)} (${pages.pageCount} pages).`, { key: entry.key });
  }
  let applied = 0;
  let txid = 0;
  let time = 0;
  let checksum = recorded;
  // Page writes are deferred to the end of the segment or the stop point: a page many transactions
  // rewrite is written once, in its last image (sizes are followed transaction by transaction).
  const write = (stopped: boolean) => {
    writePages(fd, pages.take(), pageSize);
    ftruncateSync(fd, pages.pageCount * pageSize);
    return { applied, txid, time, checksum, stopped };
  };
  for (const tx of seg.transactions) {
    if (tx.txid > stopTxid || tx.time > stopTime) return write(true);
    pages.add({ truncateTo: tx.truncateTo, commitSize: tx.commitSize, pages: tx.pages() });
    applied++;
    txid = tx.txid;
    time = tx.time;
    checksum = tx.postChecksum;
  }
  return write(txid >= stopTxid);
}

/** IOV_MAX on Linux: the most buffers one writev takes. */
const MAX_IOV = 1024;

/** Write ascending page images, one `pwritev` per run of consecutive page numbers. */
function writePages(fd: number, pages: readonly PageImage[], pageSize: number): void {
  for (let i = 0; i < pages.length;) {
    let j = i + 1;
    while (j < pages.length && j - i < MAX_IOV && pages[j]!.pgno === pages[j - 1]!.pgno + 1) j++;
    const position = (pages[i]!.pgno - 1) * pageSize;
    const run = pages.slice(i, j);
    // A short write (rare on regular files) is finished page by page: rewriting a whole page is harmless.
    if (run.length === 1 || writevSync(fd, run.map((p) => p.data), position) !== run.length * pageSize) {
      for (const p of run) writeAll(fd, p.data, (p.pgno - 1) * pageSize);
    }
    i = j;
  }
}

function writeAll(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.byteLength) done += writeSync(fd, data, done, data.byteLength - done, position + done);
}

/** fsync on the libuv pool; resolves with the error instead of rejecting, so the caller can always wait for it before closing `fd`. */
function fsyncOnPool(fd: number): Promise<Error | null> {
  return new Promise((resolve) => fsync(fd, (err) => resolve(err)));
}

function fsyncDir(dir: string): void {
  try {
    const d = openSync(dir, 'r');
    try { fsyncSync(d); } finally { closeSync(d); }
  } catch {
    // Not every platform can fsync a directory; the rename itself is atomic.
  }
}

/** `PRAGMA integrity_check` and the `_domicile_meta` txid (when the table exists) of a restored file. */
function verifyDatabase(path: string, txid: number): void {
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { fileMustExist: true });
    // Memory-mapped reads: integrity_check visits every page; measured ~10% faster than the page cache alone.
    db.pragma(`mmap_size = ${Math.min(statSync(path).size, 1 << 30)}`);
    const rows = db.prepare('PRAGMA integrity_check').pluck().all() as string[];
    if (rows.length !== 1 || rows[0] !== 'ok') throw backupInvalid(`Restored database fails integrity_check: ${rows.slice(0, 3).join('; ')}.`);
    const hasMeta = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = '_domicile_meta'").get();
    if (hasMeta) {
      const meta = db.prepare('SELECT txid FROM _domicile_meta WHERE id = 1').pluck().get() as number | undefined;
      if (meta !== txid) throw backupInvalid(`Restored database records txid ${String(meta)}, the backup says ${txid}.`);
    }
  } catch (err) {
    if ((err as { code?: unknown }).code === 'BACKUP_INVALID') throw err;
    throw backupInvalid('Restored database cannot be opened by SQLite.', {}, err);
  } finally {
    db?.close();
  }
}

/** One generation as `GET /v1/tenants/:id/backups` shows it. */
export interface GenerationInfo {
  epoch: number;
  generation: string;
  snapshots: Array<{ key: string; txid: number; time: number; size: number }>;
  segmentCount: number;
  firstTxid: number;
  lastTxid: number;
  firstTime: number;
  lastTime: number;
}

/**
 * Every generation of a tenant incarnation, oldest first (epoch, then
 * creation). Reads each snapshot's header and the newest segment of each
 * generation for the times.
 */
export async function listGenerations(store: ObjectStore, tenant: string, incarnation: string): Promise<GenerationInfo[]> {
  const byGen = new Map<string, { ref: GenerationRef; snaps: Array<{ key: string; txid: number; size: number }>; segs: SegEntry[] }>();
  for await (const e of store.list(generationsPrefix(tenant, incarnation))) {
    let k: ParsedKey;
    try { k = parseKey(e.key); } catch { continue; }
    const id = `${k.epoch}/${k.generation}`;
    let g = byGen.get(id);
    if (!g) byGen.set(id, (g = { ref: { tenant: k.tenant, incarnation: k.incarnation, epoch: k.epoch, generation: k.generation }, snaps: [], segs: [] }));
    if (k.kind === 'snapshot') g.snaps.push({ key: e.key, txid: k.txid, size: e.size });
    else g.segs.push({ key: e.key, minTxid: k.minTxid, maxTxid: k.maxTxid });
  }
  const out: GenerationInfo[] = [];
  const ordered = [...byGen.values()].sort((a, b) => compareKeys(generationPrefix(a.ref), generationPrefix(b.ref)));
  for (const g of ordered) {
    g.snaps.sort((a, b) => a.txid - b.txid);
    g.segs.sort((a, b) => a.maxTxid - b.maxTxid);
    const snapshots = [];
    for (const s of g.snaps) snapshots.push({ ...s, time: (await readSnapshotHeaderAt(store, s.key)).time });
    const lastSeg = g.segs.at(-1);
    let lastTxid = snapshots.at(-1)?.txid ?? 0;
    let lastTime = snapshots.at(-1)?.time ?? 0;
    if (lastSeg && lastSeg.maxTxid > lastTxid) {
      const seg = decodeSegment(await store.get(lastSeg.key), lastSeg.key);
      lastTxid = seg.maxTxid;
      lastTime = seg.transactions.at(-1)!.time;
    }
    out.push({
      epoch: g.ref.epoch, generation: g.ref.generation, snapshots, segmentCount: g.segs.length,
      firstTxid: snapshots[0]?.txid ?? g.segs[0]?.minTxid ?? 0, lastTxid,
      firstTime: snapshots[0]?.time ?? 0, lastTime,
    });
  }
  return out;
}

/**
 * The newest replicated state of a generation (for `WalShipper.resume`): the
 * last segment's post checksum, or the newest snapshot's when no segment follows it.
 */
export async function readGenerationTip(store: ObjectStore, ref: GenerationRef): Promise<{ txid: number; checksum: DbChecksum; pageHash: PageHashId; time: number } | null> {
  const { snaps, segs } = await listGeneration(store, ref);
  const lastSnap = snaps.at(-1);
  const lastSeg = segs.reduce<SegEntry | undefined>((m, s) => (!m || s.maxTxid > m.maxTxid ? s : m), undefined);
  if (lastSeg && (!lastSnap || lastSeg.maxTxid > lastSnap.txid)) {
    const seg = decodeSegment(await store.get(lastSeg.key), lastSeg.key);
    checkIdentity(lastSeg.key, ref, seg);
    return { txid: seg.maxTxid, checksum: seg.postChecksum, pageHash: seg.pageHash, time: seg.transactions.at(-1)!.time };
  }
  if (!lastSnap) return null;
  const h = await readSnapshotHeaderAt(store, lastSnap.key);
  checkIdentity(lastSnap.key, ref, h);
  return { txid: h.txid, checksum: h.checksum, pageHash: h.pageHash, time: h.time };
}
