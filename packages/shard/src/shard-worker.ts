/**
 * Entry of a shard worker thread: the only place SQLite runs (DESIGN §7).
 * Messages are handled one at a time, synchronously, in arrival order; the
 * pool decides which tenant runs where.
 */
import { fstatSync, statSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { DomicileError, isDomicileError } from '@domicile/errors';
import { executeBatch, executeOne } from './execute.ts';
import { describeStatement } from './describe.ts';
import { executeIdempotent } from './idempotency.ts';
import { executeGroup, type GroupStats } from './group-commit.ts';
import { applyMigrations } from './migrate.ts';
import { WorkerSessions } from './worker-sessions.ts';
import { HandleCache, type CloseReason } from './handle-cache.ts';
import { osThreadId } from './thread-cpu.ts';
import { createShard, openShard, type ShardHandle, type ShardLimits } from './open-shard.ts';
import type { MaintenanceOp, MaintenanceResult, RequestReply, WorkerCounters, WorkerInit, WorkerReply, WorkerRequest } from './protocol.ts';
import { walChangedSince } from './wal-mark.ts';
import { copyFromDescriptor } from './live-file.ts';

const init = workerData as WorkerInit;
const port = parentPort;
if (!port) throw new Error('shard-worker.ts must run as a worker thread');

const limits: ShardLimits = Object.freeze({
  statementTimeoutMs: init.statementTimeoutMs,
  maxDbBytes: init.maxDbBytes,
  group: init.index,
  replication: init.replication,
});
let interrupts = 0;
const groupStats: GroupStats = { groups: 0, replayed: 0 };

const cache = new HandleCache({
  max: init.maxOpenShards,
  open: (ref) => openShard(ref, limits),
  beforeClose,
  onCloseError: (handle, reason, err) =>
    log('warn', 'closing a shard handle failed', { tenant: handle.tenant, reason, err: String((err as Error)?.message ?? err) }),
});

/**
 * Hook before a handle closes. Replication off: checkpoint the WAL into the
 * database (TRUNCATE) so the file is whole on its own. Replication on (DESIGN
 * §8): never checkpoint here — the connection has NO_CKPT_ON_CLOSE, the
 * unshipped frames stay in `-wal` and the replicator (main thread) ships them
 * and checkpoints through the tenant's queue. An erased shard is not
 * checkpointed. `busy_timeout = 0`: when another worker still holds the file
 * (a re-homed tenant), the checkpoint is skipped rather than waited for; the
 * last handle to close checkpoints anyway.
 */
function beforeClose(handle: ShardHandle, reason: CloseReason): void {
  if (reason === 'erase') return;
  if (init.replication) {
    handle.guard.trusted(() => {
      if (handle.db.inTransaction) handle.db.prepare('ROLLBACK').run();
    });
    return;
  }
  handle.guard.trusted(() => {
    if (handle.db.inTransaction) handle.db.prepare('ROLLBACK').run();
    handle.db.pragma('busy_timeout = 0');
    handle.db.pragma('wal_checkpoint(TRUNCATE)');
  });
}

/** A replication job (protocol.ts `MaintenanceOp`); runs between the tenant's writes. */
function maintenance(h: ShardHandle, job: MaintenanceOp): MaintenanceResult {
  if (job.op === 'hold') return { busy: 0, log: -1, checkpointed: -1, skipped: 'hold' };
  return h.guard.trusted(() => {
    if (h.db.inTransaction) throw new DomicileError('INTERNAL', 'maintenance inside an open transaction');
    if (job.op === 'checkpoint' && job.expectWal !== undefined && walChangedSince(`${h.path}-wal`, job.expectWal)) {
      return { busy: 0, log: -1, checkpointed: -1, skipped: 'wal-changed' };
    }
    const mode = job.op === 'checkpoint' && job.mode === 'RESTART' ? 'RESTART' : 'TRUNCATE';
    const row = (h.db.pragma(`wal_checkpoint(${mode})`) as Array<{ busy: number; log: number; checkpointed: number }>)[0]!;
    const out: MaintenanceResult = { busy: row.busy, log: row.log, checkpointed: row.checkpointed };
    if (job.op === 'snapshot-copy') {
      if (row.busy !== 0 || walBytes(h.path) !== 0) return { ...out, skipped: 'busy' };
      // Not copyFileSync: it closes a descriptor of the live file, which drops this process's SQLite locks on
      // it (live-file.ts). The pool lends one of its own that stays open.
      if (job.fd === undefined) throw new DomicileError('INTERNAL', 'snapshot-copy without a descriptor of the live file');
      // Lent when the job was queued: a restore in place queued before it may have swapped the file since.
      const [lent, now] = [fstatSync(job.fd), statSync(h.path)];
      if (lent.ino !== now.ino || lent.dev !== now.dev) throw new DomicileError('INTERNAL', 'the database file was replaced before its snapshot copy');
      copyFromDescriptor(job.fd, job.dest);
      out.copied = true;
    }
    return out;
  });
}

function walBytes(dbPath: string): number {
  try {
    return statSync(`${dbPath}-wal`).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

const sessions = new WorkerSessions(cache, { maxResultBytes: init.maxResultBytes });

function counters(): WorkerCounters {
  const s = cache.stats();
  return { open: s.open, opens: s.opens, evictions: s.evictions, interrupts, groups: groupStats.groups, replayed: groupStats.replayed, closed: cache.drainClosed() };
}

function log(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  port!.postMessage({ kind: 'log', level, msg, fields } satisfies WorkerReply);
}

function handle(msg: WorkerRequest): unknown {
  const execLimits = { maxResultBytes: init.maxResultBytes };
  switch (msg.type) {
    case 'query': {
      const key = msg.opts.idempotencyKey;
      if (key !== undefined) {
        return cache.use(msg.ref, (h) => executeIdempotent(h, 'query', [msg.statement], { ...msg.opts, idempotencyKey: key }, execLimits, init.idempotencyTtlMs));
      }
      return cache.use(msg.ref, (h) => executeOne(h, msg.statement, msg.opts, execLimits));
    }
    case 'batch': {
      const key = msg.opts.idempotencyKey;
      if (key !== undefined) {
        return cache.use(msg.ref, (h) => executeIdempotent(h, 'batch', msg.statements, { ...msg.opts, idempotencyKey: key }, execLimits, init.idempotencyTtlMs));
      }
      return cache.use(msg.ref, (h) => executeBatch(h, msg.statements, msg.opts, execLimits));
    }
    case 'group':
      return cache.use(msg.ref, (h) => executeGroup(h, msg.members, execLimits, init.idempotencyTtlMs, groupStats)).map((r) => {
        if (r.ok) return r;
        if (r.error.code === 'QUERY_TIMEOUT') interrupts++;
        if (r.error.code === 'INTERNAL') log('error', r.error.message, { cause: String((r.error.cause as Error)?.stack ?? r.error.cause) });
        return { ok: false, error: r.error.serialize() };
      });
    case 'migrate':
      return cache.use(msg.ref, (h) => applyMigrations(h, msg.migrations));
    case 'create':
      cache.adopt(createShard(msg.ref, limits));
      return null;
    case 'close-tenant':
      return cache.close(msg.tenant, msg.reason) ? 1 : 0;
    case 'close-all':
      return cache.closeAll('shutdown');
    case 'session-open':
      return sessions.open(msg.sessionId, msg.ref);
    case 'session-exec': {
      const step = sessions.execute(msg.sessionId, msg.statement, msg.opts);
      if (step.error?.code === 'QUERY_TIMEOUT') interrupts++;
      return step;
    }
    case 'session-close':
      return sessions.close(msg.sessionId);
    case 'describe':
      return cache.use(msg.ref, (h) => describeStatement(h, msg.sql));
    case 'session-describe':
      return sessions.describe(msg.sessionId, msg.sql);
    case 'maintenance':
      return cache.use(msg.ref, (h) => maintenance(h, msg.job));
    case 'multi':
      throw new DomicileError('INTERNAL', 'nested multi message');
    case 'crash':
      setImmediate(() => {
        throw new Error('injected worker crash');
      });
      return null;
  }
}

/**
 * How long the answers to the parts of one `multi` message may wait for each
 * other. Posting a message costs both threads several microseconds (a
 * structured clone and an event on the main thread), as much as a small
 * write itself, so answers travel together; a part finished early waits at
 * most this long for its neighbours.
 */
const REPLY_BATCH_MS = 1;

const claims = new Int32Array(init.claims);

/**
 * Take a part the main thread may take back (shard-pool.ts rule 2b): swap its
 * claim from its id to 0. False when the main thread took it first.
 */
function claimed(msg: WorkerRequest): boolean {
  return msg.claim === undefined || Atomics.compareExchange(claims, msg.claim, msg.id, 0) === msg.id;
}

/**
 * The answer to a part the main thread took back; with the test hook set,
 * none: it is posted on its own once the delay has passed (the thread goes
 * on meanwhile, so only the answer is late).
 */
function skip(msg: WorkerRequest): RequestReply | undefined {
  const reply: RequestReply = { kind: 'skipped', id: msg.id };
  if (init.testSkipDelayMs <= 0) return reply;
  setTimeout(() => port!.postMessage(reply), init.testSkipDelayMs);
  return undefined;
}

port.on('message', (msg: WorkerRequest) => {
  if (msg.type !== 'multi') {
    const reply = claimed(msg) ? answer(msg) : skip(msg);
    if (reply) port!.postMessage(reply);
    return;
  }
  let replies: RequestReply[] = [];
  let since = performance.now();
  const post = () => {
    if (replies.length === 1) port!.postMessage(replies[0]!);
    else if (replies.length > 1) port!.postMessage({ kind: 'replies', replies } satisfies WorkerReply);
    replies = [];
    since = performance.now();
  };
  for (const part of msg.parts) {
    const reply = claimed(part) ? answer(part) : skip(part);
    if (reply) replies.push(reply);
    if (performance.now() - since >= REPLY_BATCH_MS) post();
  }
  post();
});

/** Run one request; its reply. */
function answer(msg: WorkerRequest): RequestReply {
  let reply: RequestReply;
  try {
    const value = handle(msg) as StatementValue;
    reply = { kind: 'reply', id: msg.id, ok: true, value, counters: counters() };
  } catch (err) {
    const e = isDomicileError(err) ? err : new DomicileError('INTERNAL', 'shard worker failed', {}, { cause: err });
    if (e.code === 'QUERY_TIMEOUT') interrupts++;
    if (e.code === 'INTERNAL') log('error', e.message, { cause: String((err as Error)?.stack ?? err) });
    reply = { kind: 'reply', id: msg.id, ok: false, error: e.serialize(), counters: counters() };
  }
  return reply;
}

type StatementValue = Extract<WorkerReply, { ok: true }>['value'];

port.postMessage({ kind: 'ready', tid: osThreadId() } satisfies WorkerReply);
