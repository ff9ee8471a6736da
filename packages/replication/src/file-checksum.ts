/**
 * The rolling database checksum of a file on disk: restore's final check of
 * the file it wrote against the checksum the backup records (docs/restore.md).
 * A large file is hashed on a worker thread started for it (plain JavaScript,
 * page-hash.js), so the caller runs `PRAGMA integrity_check` meanwhile on
 * its own thread: on two cores the two take the time of the longer one.
 */
import { Worker } from 'node:worker_threads';
import { DomicileError } from '@domicile/errors';
import type { DbChecksum, PageHashId } from './checksum.ts';
import { fileChecksumSync } from './page-hash.js';

/**
 * From this many pages on, the file is hashed on a worker thread. Starting
 * one takes ~30 ms (its own thread, mostly); hashing 4096 pages of 4 KiB on
 * the calling thread ~20 ms, about what integrity_check takes on them.
 */
export const FILE_CHECKSUM_THREAD_PAGES = 4096;

const WORKER = new URL('./file-checksum-worker.js', import.meta.url);

/**
 * XOR of the page hashes (page hash `pageHash`) of pages 1..pageCount of `path`. Small files are
 * hashed before this returns; larger ones (`threadFrom` pages, default
 * {@link FILE_CHECKSUM_THREAD_PAGES}) on a worker thread while the caller goes
 * on. Fails with INTERNAL when the file cannot be read to that length.
 */
export function fileChecksum(path: string, pageSize: number, pageCount: number, pageHash: PageHashId, opts: { threadFrom?: number } = {}): Promise<DbChecksum> {
  if (pageCount < (opts.threadFrom ?? FILE_CHECKSUM_THREAD_PAGES)) {
    try {
      return Promise.resolve(fileChecksumSync(path, pageSize, pageCount, pageHash));
    } catch (err) {
      return Promise.reject(unreadable(err));
    }
  }
  return new Promise<DbChecksum>((resolve, reject) => {
    // A small young generation: the thread's garbage is one digest per page (a BigInt, or 32 bytes under SHA-256), and V8's default lets the
    // young generation grow to tens of MB of resident memory under load (snapshot.test.ts bounds a restore's peak
    // RSS growth; it went past it in loaded test runs before this limit).
    const worker = new Worker(WORKER, {
      workerData: { path, pageSize, pageCount, pageHash }, name: 'domicile-file-checksum', resourceLimits: { maxYoungGenerationSizeMb: 2 },
    });
    worker.once('message', (m: { checksum?: bigint; error?: string }) => {
      if (typeof m.checksum === 'bigint') resolve(m.checksum);
      else reject(unreadable(m.error));
    });
    worker.once('error', (err) => reject(unreadable(err)));
    worker.once('exit', (code) => reject(unreadable(`the checksum thread exited (${code}) without an answer`))); // no-op once settled
  });
}

function unreadable(err: unknown): DomicileError {
  return new DomicileError('INTERNAL', `Could not hash the restored file: ${err instanceof Error ? err.message : String(err)}`);
}
