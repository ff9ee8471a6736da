/**
 * A restore off the event loop (DESIGN §7; docs/restore.md): one short-lived
 * worker thread per restore (restore-worker.ts) downloads and checks the
 * generation into a staged file, then applies the one `finish` it is sent.
 * From TypeScript sources the worker loads through tsx, as the shard workers
 * do (packages/shard/src/spawn-worker.ts says why).
 */
import { Worker } from 'node:worker_threads';
import { DomicileError, deserializeError, type SerializedError } from '@domicile/errors';
import type { GenerationRef, RestoreFinish } from '@domicile/replication';
import { resolveTsxEsmApi } from '@domicile/shard';

/** What the worker starts with (structured-clone safe). */
export interface RestoreThreadInit {
  /** The region bucket's URL as configured (credentials from the environment, as the node's own store). */
  bucketUrl: string;
  ref: GenerationRef;
  /** A txid, a time (ms) or the newest state. */
  target: { txid: number } | { time: number } | 'latest';
  /** The staged file to write (beside the shard: same region directory, invariant 3). */
  outPath: string;
}

/** What the staged file holds once checked. */
export interface RestoredFile {
  /** The restored point: the last transaction at or before the target. */
  txid: number;
  /** Its commit time (ms). */
  time: number;
  bytes: number;
  pages: number;
  /** Snapshot and segments applied. */
  objects: number;
}

/** Main thread → worker. */
export type ToRestoreWorker = { type: 'finish'; finish: RestoreFinish } | { type: 'cancel' };

/** Worker → main thread. */
export type FromRestoreWorker =
  | { type: 'restored'; result: RestoredFile }
  | { type: 'finished'; txid: number }
  | { type: 'error'; error: SerializedError };

const ENTRY = new URL(import.meta.url.endsWith('.ts') ? './restore-worker.ts' : './restore-worker.js', import.meta.url);

interface Waiter<T> { resolve: (v: T) => void; reject: (err: unknown) => void }

/** One restore worker; see the module comment. */
export class RestoreThread {
  readonly #worker: Worker;
  #waiter: Waiter<RestoredFile> | Waiter<number> | undefined;
  #ended: DomicileError | undefined;
  /** Resolves when the staged file passed every check; BACKUP_INVALID, BAD_REQUEST or REPLICATION_UNAVAILABLE otherwise. */
  readonly restored: Promise<RestoredFile>;

  private constructor(init: RestoreThreadInit) {
    this.restored = new Promise<RestoredFile>((resolve, reject) => { this.#waiter = { resolve, reject }; });
    this.restored.catch(() => {}); // observed by the caller; never an unhandled rejection after a cancel
    const options = { workerData: init, name: 'domicile-restore' };
    this.#worker = ENTRY.pathname.endsWith('.ts')
      ? new Worker(`import(${JSON.stringify(resolveTsxEsmApi())})
  .then((tsx) => { tsx.register(); return import(${JSON.stringify(ENTRY.href)}); })
  .catch((err) => { setImmediate(() => { throw err; }); });`, { ...options, eval: true })
      : new Worker(ENTRY, options);
    this.#worker.on('message', (m: FromRestoreWorker) => {
      const w = this.#waiter;
      this.#waiter = undefined;
      if (m.type === 'error') w?.reject(deserializeError(m.error));
      else if (m.type === 'restored') (w as Waiter<RestoredFile> | undefined)?.resolve(m.result);
      else (w as Waiter<number> | undefined)?.resolve(m.txid);
    });
    this.#worker.once('error', (err) => this.#end(new DomicileError('INTERNAL', 'restore worker failed', {}, { cause: err })));
    this.#worker.once('exit', (code) => this.#end(new DomicileError('INTERNAL', `restore worker exited (${code}) before it answered`)));
  }

  /** Start restoring `init.ref` into `init.outPath` on a new worker thread. */
  static start(init: RestoreThreadInit): RestoreThread {
    return new RestoreThread(init);
  }

  /** After `restored`: rewrite Domicile's own rows of the staged file; resolves with its txid. The worker ends after it. */
  finish(finish: RestoreFinish): Promise<number> {
    if (this.#ended) return Promise.reject(this.#ended);
    return new Promise<number>((resolve, reject) => {
      this.#waiter = { resolve, reject };
      this.#worker.postMessage({ type: 'finish', finish } satisfies ToRestoreWorker);
    });
  }

  /** Stop the worker (a failure elsewhere, or no finish needed); the caller removes the staged file. */
  async cancel(): Promise<void> {
    if (this.#ended) return;
    this.#worker.postMessage({ type: 'cancel' } satisfies ToRestoreWorker);
    await this.#worker.terminate();
  }

  #end(err: DomicileError): void {
    this.#ended ??= err;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(err);
  }
}
