/**
 * Worker thread of file-checksum.ts: hashes one file (workerData: {path,
 * pageSize, pageCount, pageHash}) and posts `{checksum}` or `{error}`, then ends.
 * Plain JavaScript: see page-hash.js.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { fileChecksumSync } from './page-hash.js';

try {
  parentPort?.postMessage({ checksum: fileChecksumSync(workerData.path, workerData.pageSize, workerData.pageCount, workerData.pageHash) });
} catch (err) {
  parentPort?.postMessage({ error: String(err instanceof Error ? err.message : err) });
}
