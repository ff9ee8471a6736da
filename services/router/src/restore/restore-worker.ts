/**
 * Entry of a restore worker thread (restore-thread.ts starts it): opens the
 * region's bucket from its URL, rebuilds the generation into the staged file
 * with the replication library's `restore()` (download, decompression, every
 * checksum, `PRAGMA integrity_check`), reports, then waits for the one
 * `finish` the main thread sends — at once for a fork, inside the tenant's
 * exclusive section for a restore in place — and rewrites Domicile's own rows.
 * Nothing of it runs on the node's event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { DomicileError, isDomicileError, type SerializedError } from '@domicile/errors';
import { openObjectStore } from '@domicile/object-store';
import { finishRestoredFile, restore } from '@domicile/replication';
import type { RestoreThreadInit, ToRestoreWorker, FromRestoreWorker } from './restore-thread.ts';

const port = parentPort!;
const init = workerData as RestoreThreadInit;

function serialize(err: unknown): SerializedError {
  if (isDomicileError(err)) return err.serialize();
  return new DomicileError('INTERNAL', `restore worker: ${String((err as Error)?.message ?? err)}`).serialize();
}

const post = (m: FromRestoreWorker): void => port.postMessage(m);

async function main(): Promise<void> {
  const store = openObjectStore(init.bucketUrl);
  try {
    const target = init.target === 'latest' ? 'latest' : 'txid' in init.target ? { txid: init.target.txid } : { time: init.target.time };
    const r = await restore({ store, ref: init.ref, target, outPath: init.outPath });
    post({ type: 'restored', result: { txid: r.txid, time: r.time, bytes: r.bytes, pages: r.pages, objects: r.objects } });
  } finally {
    store.close();
  }
  port.on('message', (m: ToRestoreWorker) => {
    if (m.type === 'cancel') { port.close(); return; }
    try {
      post({ type: 'finished', txid: finishRestoredFile(init.outPath, m.finish).txid });
    } catch (err) {
      post({ type: 'error', error: serialize(err) });
    }
    port.close();
  });
}

main().catch((err: unknown) => {
  post({ type: 'error', error: serialize(err) });
  port.close();
});
