/**
 * Hrana streams and their batons. A stream lives in this process's memory;
 * it is kept between HTTP requests only while it holds state (an open
 * transaction, i.e. a shard session, or stored SQL texts). Its baton is
 * `<stream id>.<sequence>.<HMAC(tenant, id, sequence)>` under a per-process
 * random key: unguessable, bound to the tenant, and renewed on every answer,
 * so a replayed or concurrent baton is refused. An idle stream expires after
 * the session idle timeout; its transaction is rolled back.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { DomicileError } from '@domicile/errors';
import type { ShardPool, ShardRef } from '@domicile/shard';

/** Stored SQL texts per stream. */
export const MAX_STORED_SQL = 1000;
/** Streams kept between requests, whole process. */
export const MAX_STREAMS = 10_000;

/** One Hrana stream. */
export interface HranaStream {
  readonly id: string;
  readonly tenant: string;
  ref: ShardRef;
  readonly sqls: Map<number, string>;
  /** The shard session of the open transaction; undefined in autocommit. */
  session: string | undefined;
  /** The transaction began with libsql's `BEGIN TRANSACTION READONLY`: no writes until it ends. */
  readOnlyTxn: boolean;
  /** Set when the session ended under the stream (expiry, erase, crash): every later request fails. */
  broken: DomicileError | undefined;
  seq: number;
  busy: boolean;
  closed: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** The streams of one app. */
export class HranaStreams {
  readonly #pool: ShardPool;
  readonly #idleMs: number;
  readonly #key = randomBytes(32);
  readonly #streams = new Map<string, HranaStream>();

  constructor(pool: ShardPool, idleTimeoutMs: number) {
    this.#pool = pool;
    this.#idleMs = idleTimeoutMs;
  }

  /** A fresh stream for a pipeline without a baton. */
  create(tenant: string, ref: ShardRef): HranaStream {
    const id = randomBytes(18).toString('base64url');
    return { id, tenant, ref, sqls: new Map(), session: undefined, readOnlyTxn: false, broken: undefined, seq: 0, busy: true, closed: false, timer: undefined };
  }

  /** The stream a baton names, claimed for one pipeline. Unknown, expired, replayed, busy or foreign → BAD_REQUEST. */
  claim(baton: string, tenant: string): HranaStream {
    const invalid = () => new DomicileError('BAD_REQUEST', 'the baton is unknown or expired; open a new stream');
    const [id, seqText, mac] = baton.split('.');
    if (!id || !seqText || !mac || !/^\d{1,15}$/.test(seqText)) throw invalid();
    const expected = this.#mac(tenant, id, Number(seqText));
    const given = Buffer.from(mac, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid();
    const s = this.#streams.get(id);
    if (!s || s.tenant !== tenant || s.seq !== Number(seqText) || s.closed) throw invalid();
    if (s.busy) throw new DomicileError('BAD_REQUEST', 'the stream is already serving a request');
    if (s.broken) {
      // A whole-request error makes the client close its stream instead of carrying on outside the transaction.
      void this.close(s);
      throw s.broken;
    }
    s.busy = true;
    clearTimeout(s.timer);
    return s;
  }

  /**
   * Ends a pipeline: keeps the stream and returns its next baton while it
   * holds state, else forgets it and returns null.
   */
  async release(s: HranaStream): Promise<string | null> {
    s.busy = false;
    // A broken stream keeps its baton so that the next request fails as a whole.
    if (s.closed || (!s.broken && s.session === undefined && s.sqls.size === 0)) {
      await this.close(s);
      return null;
    }
    if (!this.#streams.has(s.id) && this.#streams.size >= MAX_STREAMS) {
      await this.close(s);
      throw new DomicileError('OVERLOADED', 'too many open Hrana streams on this node');
    }
    s.seq++;
    this.#streams.set(s.id, s);
    clearTimeout(s.timer);
    s.timer = setTimeout(() => void this.close(s), this.#idleMs);
    s.timer.unref();
    return `${s.id}.${s.seq}.${this.#mac(s.tenant, s.id, s.seq).toString('base64url')}`;
  }

  /** Close a stream: roll back its transaction, forget it. */
  async close(s: HranaStream): Promise<void> {
    s.closed = true;
    clearTimeout(s.timer);
    if (this.#streams.get(s.id) === s) this.#streams.delete(s.id);
    const session = s.session;
    s.session = undefined;
    if (session !== undefined) await this.#pool.closeSession(session).catch(() => false);
  }

  /** True when `baton` names a live stream of `tenant` with an open transaction (it passes a move's gate). */
  holdsSession(baton: unknown, tenant: string): boolean {
    if (typeof baton !== 'string') return false;
    const s = this.#streams.get(baton.split('.')[0] ?? '');
    return s !== undefined && s.tenant === tenant && !s.closed && s.session !== undefined;
  }

  /**
   * A move's fence (DESIGN §9 step 4): open transactions of `tenant` get
   * `graceMs` to end, then are rolled back; their streams answer `error`
   * (TENANT_MOVING) to the next request.
   */
  async endSessions(tenant: string, graceMs: number, error: DomicileError): Promise<void> {
    const open = () => [...this.#streams.values()].filter((s) => s.tenant === tenant && !s.closed && s.session !== undefined);
    const deadline = Date.now() + graceMs;
    while (open().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await Promise.all(open().map(async (s) => {
      s.broken = error;
      const session = s.session!;
      s.session = undefined;
      await this.#pool.closeSession(session).catch(() => false);
    }));
  }

  /** Close every stream (app shutdown). */
  async closeAll(): Promise<void> {
    await Promise.all([...this.#streams.values()].map((s) => this.close(s)));
  }

  /** Streams kept between requests. */
  get size(): number {
    return this.#streams.size;
  }

  #mac(tenant: string, id: string, seq: number): Buffer {
    return createHmac('sha256', this.#key).update(`${tenant}\0${id}\0${seq}`).digest();
  }
}
