/**
 * `ThreadShippers`: every WAL shipper of the node on one worker thread
 * (shipper-worker.ts). Measured under write load (loadtest/RESULTS.md): with
 * the shippers on the event loop, async replication cost about 40 % of the
 * router's main-thread time — reading each tenant's `-wal`, hashing pages,
 * encoding and compressing segments. Here the main thread only exchanges
 * small messages; segment bytes come back as transferred buffers (no copy).
 *
 * The thread starts at the first use. If it dies, every pending and later call
 * of its handles fails with `SHIPPER_LOST`; the replicator then drops them and
 * resumes each tenant from its bucket's tip (the `-wal` still holds every
 * unshipped frame), and the next call starts a new thread.
 * From TypeScript sources the worker loads through tsx, as the shard workers
 * do (packages/shard/src/spawn-worker.ts says why).
 */
import { Worker } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { DomicileError } from '@domicile/errors';
import { FsObjectStore, type ObjectStore } from '@domicile/object-store';
import type { GenerationTip, PassResult, ShipperOptions, WalMark } from '@domicile/replication';
import { resolveTsxEsmApi, type LiveFileLender } from '@domicile/shard';
import { addPuts, fromWire, type FromShipperWorker, type PutTotals, type ShipperState, type ToShipperWorker } from './shipper-protocol.ts';
import { ShipperLostError, withFd, withLiveFile, type ShipperHandle, type Shippers } from './shippers.ts';

const ENTRY = new URL(import.meta.url.endsWith('.ts') ? './shipper-worker.ts' : './shipper-worker.js', import.meta.url);

/** A call before its id is assigned (Omit per union member). */
type CallMessage = ToShipperWorker extends infer T ? (T extends { id: number } ? Omit<T, 'id'> : never) : never;

/** An answer to a call (not a progress or start message). */
type Answer = Extract<FromShipperWorker, { id: number }>;

interface Pending { resolve: (m: Extract<FromShipperWorker, { ok: true }>) => void; reject: (err: unknown, m?: Answer) => void }

class Thread {
  readonly worker: Worker;
  readonly pending = new Map<number, Pending>();
  /** Each open handle's counters, updated by progress messages. */
  readonly progress = new Map<number, (state: ShipperState) => void>();
  lost: ShipperLostError | undefined;
  /** The thread's OS thread id, once it said (Linux). */
  tid: number | undefined;
  /** S3 put counters of the thread's bucket stores, by bucket URL, as of the latest answer. */
  readonly puts = new Map<string, PutTotals>();

  constructor(onLost: (t: Thread) => void) {
    const options = { name: 'domicile-shipper' };
    this.worker = ENTRY.pathname.endsWith('.ts')
      ? new Worker(`import(${JSON.stringify(resolveTsxEsmApi())})
  .then((tsx) => { tsx.register(); return import(${JSON.stringify(ENTRY.href)}); })
  .catch((err) => { setImmediate(() => { throw err; }); });`, { ...options, eval: true })
      : new Worker(ENTRY, options);
    this.worker.unref();
    this.worker.on('message', (m: FromShipperWorker) => {
      if ('tid' in m) {
        this.tid = m.tid;
        return;
      }
      if (!('id' in m)) {
        this.progress.get(m.sid)?.(m.state);
        return;
      }
      if (m.puts) {
        // Answers may arrive out of order (passes of several tenants overlap): counters only grow.
        const was = this.puts.get(m.puts.bucket);
        this.puts.set(m.puts.bucket, {
          lean: Math.max(was?.lean ?? 0, m.puts.lean), sdk: Math.max(was?.sdk ?? 0, m.puts.sdk), leanOff: (was?.leanOff ?? false) || m.puts.leanOff,
        });
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m);
      else p.reject(fromWire(m.error), m);
    });
    const end = (why: string) => {
      if (this.lost) return;
      this.lost = new ShipperLostError(`the shipper thread ${why}`);
      for (const p of this.pending.values()) p.reject(this.lost);
      this.pending.clear();
      onLost(this);
    };
    this.worker.once('error', (err) => end(`failed: ${err.message}`));
    this.worker.once('exit', (code) => end(`exited (${code})`));
  }
}

export interface ThreadShippersOptions {
  /**
   * The URL the shipper thread opens `store` from (`openObjectStore`); it may
   * carry credentials and is never logged. Default: a filesystem store's
   * `file://` URL, nothing for others (a pass into them fails with INTERNAL).
   * The node maps each region's store to the URL it was configured with.
   */
  sourceOf?: (store: ObjectStore) => string | undefined;
  /**
   * Lends the shippers descriptors of their tenants' live database files, for each construction and
   * each pass (the node passes its `ShardPool`; shippers.ts `withLiveFile`). Descriptors are
   * process-wide: the thread reads through the one in the message and never closes it.
   */
  liveFiles?: LiveFileLender;
}

/** The default `sourceOf`. */
function fileSource(store: ObjectStore): string | undefined {
  return store instanceof FsObjectStore ? pathToFileURL(store.root).href : undefined;
}

/** See the file comment. */
export class ThreadShippers implements Shippers {
  readonly #sourceOf: (store: ObjectStore) => string | undefined;
  readonly #lender: LiveFileLender | undefined;
  #thread: Thread | undefined;
  /** Put counters of threads that ended, by bucket URL (a new thread's stores count from 0). */
  readonly #retiredPuts = new Map<string, PutTotals>();
  #nextId = 1;
  #nextSid = 1;
  #closed = false;

  constructor(opts: ThreadShippersOptions = {}) {
    this.#sourceOf = opts.sourceOf ?? fileSource;
    this.#lender = opts.liveFiles;
  }

  /** The worker's thread id while it runs (tests stop it to prove recovery). */
  get threadId(): number | undefined {
    return this.#thread && !this.#thread.lost ? this.#thread.worker.threadId : undefined;
  }

  /** The shipper thread's OS thread id while it runs (per-thread CPU in /metrics; Linux). */
  get osThreadId(): number | undefined {
    return this.#thread && !this.#thread.lost ? this.#thread.tid : undefined;
  }

  /**
   * S3 puts of segment uploads so far, by bucket URL (as `sourceOf` gave it): totals over this
   * object's threads, and whether the current thread's store turned its lean puts off
   * (docs/object-store.md, "S3 puts"). Snapshots, uploaded from the main thread, are not counted.
   */
  putTotals(): Map<string, PutTotals> {
    const out = new Map<string, PutTotals>();
    for (const [bucket, p] of this.#retiredPuts) out.set(bucket, { ...p, leanOff: false });
    for (const [bucket, p] of this.#thread?.puts ?? []) out.set(bucket, addPuts(out.get(bucket), p));
    return out;
  }

  /** Stop the thread as a crash would (tests). */
  async crashForTest(): Promise<void> {
    await this.#thread?.worker.terminate();
  }

  #current(): Thread {
    if (this.#closed) throw new ShipperLostError('the replicator is closed');
    if (!this.#thread || this.#thread.lost) {
      this.#thread = new Thread((t) => {
        if (this.#thread === t) this.#thread = undefined;
        for (const [bucket, p] of t.puts) this.#retiredPuts.set(bucket, addPuts(this.#retiredPuts.get(bucket), p));
      });
    }
    return this.#thread;
  }

  /** Post a call; `onFailure` sees a failed answer (not a lost thread) before the promise rejects. */
  #call(t: Thread, msg: CallMessage, onFailure?: (m: Answer) => void): Promise<Extract<FromShipperWorker, { ok: true }>> {
    if (t.lost) return Promise.reject(t.lost);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      t.pending.set(id, { resolve, reject: (err, m) => { if (m) onFailure?.(m); reject(err); } });
      t.worker.postMessage({ ...msg, id });
    });
  }

  async resume(opts: ShipperOptions, tip: GenerationTip): Promise<ShipperHandle | null> {
    const t = this.#current();
    const sid = this.#nextSid++;
    const m = await withLiveFile(this.#lender, opts, (fd) => this.#call(t, { op: 'resume', sid, opts: withFd(opts, fd), tip }));
    return m.value ? this.#handle(t, sid, m.state!, opts) : null;
  }

  async beginFromCopy(opts: ShipperOptions, copyPath: string): Promise<ShipperHandle> {
    const t = this.#current();
    const sid = this.#nextSid++;
    const m = await withLiveFile(this.#lender, opts, (fd) => this.#call(t, { op: 'begin', sid, opts: withFd(opts, fd), copyPath }));
    return this.#handle(t, sid, m.state!, opts);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const t = this.#thread;
    this.#thread = undefined;
    if (t && !t.lost) await t.worker.terminate();
  }

  #handle(t: Thread, sid: number, state: ShipperState, opts: ShipperOptions): ShipperHandle {
    const lender = this.#lender;
    let { txid, shippedTxid } = state;
    let closed = false;
    const send = (msg: Exclude<ToShipperWorker, { id: number }>) => { if (!t.lost) t.worker.postMessage(msg); };
    const update = (m: { state?: ShipperState }) => { if (m.state) ({ txid, shippedTxid } = m.state); };
    t.progress.set(sid, (state) => update({ state }));
    return {
      get txid() { return txid; },
      get shippedTxid() { return shippedTxid; },
      checksum: state.checksum,
      pageHash: state.pageHash,
      pass: async (store) => {
        if (closed) throw new ShipperLostError('the shipper is closed');
        const bucket = this.#sourceOf(store);
        if (bucket === undefined) throw new DomicileError('INTERNAL', `the shipper thread has no URL to open ${store.describe()}`);
        const m = await withLiveFile(lender, opts, (liveFd) => this.#call(t, { op: 'pass', sid, bucket, ...(liveFd === undefined ? {} : { liveFd }) }, update));
        update(m);
        return m.value as PassResult;
      },
      checkpointAllowed: async () => {
        if (closed) return false;
        return (await this.#call(t, { op: 'checkpointAllowed', sid })).value as boolean;
      },
      checkpointMark: async () => {
        if (closed) return null;
        return (await this.#call(t, { op: 'checkpointMark', sid })).value as WalMark | null;
      },
      noteCheckpoint: (result) => send({ op: 'noteCheckpoint', sid, result }),
      close: () => {
        if (closed) return;
        closed = true;
        t.progress.delete(sid);
        send({ op: 'close', sid });
      },
    };
  }
}
