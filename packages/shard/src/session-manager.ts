/**
 * Interactive sessions, pool side (main thread). A session is bound to one
 * worker and one pinned handle there (worker-sessions.ts). From the moment its
 * open request starts until it closes or expires, the session *holds* its
 * tenant: the tenant's ordinary queue does not run, reads included (one writer
 * per shard, and no snapshot juggling). Other tenants are not affected: the
 * worker only runs the session's statements when they arrive.
 *
 * A session that sees no statement for `idleTimeoutMs` expires: its
 * transaction is rolled back and the tenant released. Each statement has the
 * ordinary statement timeout.
 */
import { randomUUID } from 'node:crypto';
import { DomicileError, deserializeError } from '@domicile/errors';
import type { SessionStepValue, WorkerRequest } from './protocol.ts';
import type { DescribeValue } from './describe.ts';
import type { ExecOptions, ShardRef, Statement, StatementResult } from './types.ts';

/** Default idle timeout of a session. */
export const DEFAULT_SESSION_IDLE_TIMEOUT_MS = 10_000;

/** What the pool lends the session manager (its scheduler internals stay private). */
export interface SessionHost {
  /** Queue a request behind the tenant's earlier ones; `hold(slot)` runs when it starts on worker `slot`, and the tenant stays held. */
  enqueueHolding(ref: ShardRef, build: (id: number) => WorkerRequest, hold: (slot: number) => void): Promise<unknown>;
  /** Post a request to worker `slot` now (it counts as in flight there). */
  call(slot: number, build: (id: number) => WorkerRequest): Promise<unknown>;
  /** Let the tenant's queue run again. */
  release(tenant: string): void;
  log(level: 'info' | 'warn', obj: object, msg: string): void;
}

/** Why a session ended; the statement after the end gets an error naming it. */
export type SessionEnd = 'closed' | 'expired' | 'erased' | 'worker-crash' | 'shutdown';

/** What the pool tells about a live session. */
export interface SessionInfo {
  tenant: string;
  /** False while a transaction is open. */
  autocommit: boolean;
}

interface Session {
  readonly id: string;
  readonly ref: ShardRef;
  readonly slot: number;
  autocommit: boolean;
  busy: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** Sessions by id and by tenant (at most one per tenant: it holds the tenant). */
export class SessionManager {
  readonly #host: SessionHost;
  readonly #idleMs: number;
  readonly #byId = new Map<string, Session>();
  /** Recently ended sessions and why, so a late statement gets a precise message (bounded). */
  readonly #ended = new Map<string, SessionEnd>();

  constructor(host: SessionHost, idleTimeoutMs: number) {
    this.#host = host;
    this.#idleMs = idleTimeoutMs;
  }

  /** Open a session; resolves once it holds the tenant on a worker. */
  async open(ref: ShardRef): Promise<string> {
    const id = randomUUID();
    let slot = -1;
    try {
      await this.#host.enqueueHolding(ref, (rid) => ({ id: rid, type: 'session-open', sessionId: id, ref }), (s) => {
        slot = s;
      });
    } catch (err) {
      if (slot >= 0) this.#host.release(ref.tenant);
      throw err;
    }
    const s: Session = { id, ref, slot, autocommit: true, busy: false, timer: undefined };
    this.#byId.set(id, s);
    this.#arm(s);
    return id;
  }

  /** Run one statement in the session; the session's state (`autocommit`) is updated even when it fails. */
  async execute(id: string, stmt: Statement, opts: ExecOptions): Promise<StatementResult> {
    const s = this.#live(id);
    if (s.busy) throw new DomicileError('BAD_REQUEST', 'the session is already running a statement');
    s.busy = true;
    clearTimeout(s.timer);
    let value: SessionStepValue;
    try {
      value = (await this.#host.call(s.slot, (rid) => ({ id: rid, type: 'session-exec', sessionId: id, statement: stmt, opts }))) as SessionStepValue;
    } finally {
      s.busy = false;
      if (this.#byId.get(id) === s) this.#arm(s);
    }
    s.autocommit = value.autocommit;
    if (value.error) throw deserializeError(value.error);
    return value.result!;
  }

  /** Hrana `describe` in the session (prepare only; the session's state does not change). */
  async describe(id: string, sql: string): Promise<DescribeValue> {
    const s = this.#live(id);
    if (s.busy) throw new DomicileError('BAD_REQUEST', 'the session is already running a statement');
    s.busy = true;
    clearTimeout(s.timer);
    try {
      return (await this.#host.call(s.slot, (rid) => ({ id: rid, type: 'session-describe', sessionId: id, sql }))) as DescribeValue;
    } finally {
      s.busy = false;
      if (this.#byId.get(id) === s) this.#arm(s);
    }
  }

  /** Live session state, or undefined when it ended. */
  info(id: string): SessionInfo | undefined {
    const s = this.#byId.get(id);
    return s ? { tenant: s.ref.tenant, autocommit: s.autocommit } : undefined;
  }

  /** End a session (rolling back an open transaction) and release its tenant. False when it had already ended. */
  async close(id: string, why: SessionEnd = 'closed'): Promise<boolean> {
    const s = this.#byId.get(id);
    if (!s) return false;
    this.#forget(s, why);
    try {
      // Posted after any statement still running there: the worker handles messages in order.
      await this.#host.call(s.slot, (rid) => ({ id: rid, type: 'session-close', sessionId: id }));
    } catch (err) {
      this.#host.log('warn', { tenant: s.ref.tenant, err }, 'closing a session failed');
    } finally {
      this.#host.release(s.ref.tenant);
    }
    return true;
  }

  /** End the tenant's session, if any (erase). */
  async closeTenant(tenant: string, why: SessionEnd): Promise<void> {
    for (const s of [...this.#byId.values()]) if (s.ref.tenant === tenant) await this.close(s.id, why);
  }

  /** End every session (shutdown). */
  async closeAll(why: SessionEnd): Promise<void> {
    await Promise.all([...this.#byId.keys()].map((id) => this.close(id, why)));
  }

  /** A worker died: its sessions are gone with their connections (SQLite discards the open transactions). */
  workerCrashed(slot: number): void {
    for (const s of [...this.#byId.values()]) {
      if (s.slot !== slot) continue;
      this.#forget(s, 'worker-crash');
      this.#host.release(s.ref.tenant);
    }
  }

  /** Live sessions (stats). */
  get size(): number {
    return this.#byId.size;
  }

  #live(id: string): Session {
    const s = this.#byId.get(id);
    if (s) return s;
    const why = this.#ended.get(id);
    const text = why === undefined ? 'the session does not exist' : `the session has ended (${why}); its transaction was rolled back`;
    throw new DomicileError('BAD_REQUEST', text, { session: why ?? 'unknown' });
  }

  #forget(s: Session, why: SessionEnd): void {
    clearTimeout(s.timer);
    this.#byId.delete(s.id);
    this.#ended.set(s.id, why);
    if (this.#ended.size > 1000) this.#ended.delete(this.#ended.keys().next().value!);
  }

  #arm(s: Session): void {
    clearTimeout(s.timer);
    s.timer = setTimeout(() => {
      this.#host.log('info', { tenant: s.ref.tenant, idleMs: this.#idleMs }, 'session expired; rolled back');
      void this.close(s.id, 'expired');
    }, this.#idleMs);
    s.timer.unref();
  }
}
