import { Redis, type RedisOptions } from 'ioredis';
import { DomicileError, isDomicileError } from '@domicile/errors';
import {
  ANNOUNCE_NODE, APPEND_IF_LENGTH, CAS_TENANT, CLAIM_TENANT, CREATE_TENANT, JOIN_NODE, LEAVE_NODE, REMOVE_TENANT, RENEW_LEASE, SYNC_INDEX,
} from './scripts.ts';

/** Options shared by the Redis directory and the Redis membership. */
export interface RedisConnectionOptions {
  /** `redis://[:password@]host:port[/db]` or `rediss://...` (TLS). */
  url: string;
  /** Prefix of every key and channel, so that several clusters can share one Redis. Default `domicile:`. */
  keyPrefix?: string;
  /**
   * Upper bound of one call, connecting included: past it the call fails with
   * DIRECTORY_UNAVAILABLE instead of waiting. Default 2000 ms.
   */
  timeoutMs?: number;
  /**
   * For `rediss://`: extra trusted CA certificates (PEM), e.g. a private CA. Default: Node's trust
   * store (which `NODE_EXTRA_CA_CERTS` extends). Ignored for `redis://`.
   */
  tlsCa?: string;
}

/** Default of {@link RedisConnectionOptions.keyPrefix}. */
export const DEFAULT_KEY_PREFIX = 'domicile:';
/** Default of {@link RedisConnectionOptions.timeoutMs}. */
export const DEFAULT_REDIS_TIMEOUT_MS = 2000;

/** Our scripts as ioredis commands (see scripts.ts for arguments and results). */
export interface ScriptCommands {
  domicileCreateTenant(key: string, ...args: string[]): Promise<string | null>;
  domicileCasTenant(key: string, ...args: string[]): Promise<(number | string)[]>;
  domicileRemoveTenant(key: string, ...args: string[]): Promise<(number | string)[]>;
  domicileSyncIndex(...keysAndArgs: string[]): Promise<number>;
  domicileJoinNode(lease: string, registry: string, ...args: string[]): Promise<number>;
  domicileAnnounceNode(lease: string, registry: string, ...args: string[]): Promise<number>;
  domicileAppendIfLength(list: string, ...args: string[]): Promise<number>;
  domicileRenewLease(lease: string, ...args: string[]): Promise<number>;
  domicileLeaveNode(lease: string, registry: string, ...args: string[]): Promise<number>;
  domicileClaimTenant(tenant: string, ownerLease: string, claimerLease: string, ...args: string[]): Promise<(number | string)[]>;
}

/** The ioredis client with our scripts defined. */
export type ScriptedRedis = Redis & ScriptCommands;

/** Key names (docs/cluster.md, "Data model"). Hash tags keep what one script touches in one slot. */
export class RedisKeys {
  readonly #p: string;
  constructor(prefix: string) {
    this.#p = prefix;
  }
  /** Hash of one tenant's record: its own slot. */
  tenant(id: string): string {
    return `${this.#p}tenant:{${id}}`;
  }
  /** Pattern matching every tenant hash (for SCAN). */
  tenantPattern(): string {
    return `${this.#p}tenant:{*}`;
  }
  /** The six index keys in SYNC_INDEX's KEYS order; one slot (`{idx}`). */
  indexKeys(): [string, string, string, string, string, string] {
    const b = `${this.#p}{idx}:`;
    return [`${b}all`, `${b}region`, `${b}residency`, `${b}node`, `${b}at`, `${b}count`];
  }
  /** Lease of one node (a string holding the lease id, with a PX TTL); slot `{nodes}`. */
  lease(nodeId: string): string {
    return `${this.#p}{nodes}:lease:${nodeId}`;
  }
  /** Registry of joined nodes: hash node id → JSON of the node; slot `{nodes}`. */
  registry(): string {
    return `${this.#p}{nodes}:registry`;
  }
  /** An append-only list of the cluster's control data (e.g. `schema`: the migration list); its own slot. */
  list(name: string): string {
    return `${this.#p}list:{${name}}`;
  }
  /** Pub/sub channel of epoch changes. */
  epochChannel(): string {
    return `${this.#p}epochs`;
  }
}

/** Server-side errors that mean "not available right now" rather than a bug. */
const TRANSIENT_REPLY = /^(LOADING|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY|NOAUTH|WRONGPASS|NOPERM)\b/;

/**
 * One ioredis connection with bounded calls: every call either answers within `timeoutMs` or
 * fails with DIRECTORY_UNAVAILABLE, and the connection heals by itself when Redis returns.
 *
 * Choices (docs/cluster.md, "Redis unavailable"): `enableOfflineQueue: false` (nothing queues
 * while disconnected), `maxRetriesPerRequest: 0` (a command in flight when the connection drops
 * fails at once and is never re-sent: a re-sent compare-and-set could apply twice), `commandTimeout`
 * (a paused server answers nothing; the socket stays open), a reconnect every ≤ 500 ms forever.
 * Between reconnect attempts a call fails at once; during a connection attempt it waits for it,
 * within the same bound.
 */
export class RedisConnection {
  /** The client, scripts defined. */
  readonly redis: ScriptedRedis;
  /** Key names under this connection's prefix. */
  readonly keys: RedisKeys;
  /** Bound of one call. */
  readonly timeoutMs: number;
  #lastError: Error | undefined;
  #closed = false;

  constructor(opts: RedisConnectionOptions, extra: RedisOptions = {}) {
    this.timeoutMs = validateTimeout(opts.timeoutMs);
    this.keys = new RedisKeys(validatePrefix(opts.keyPrefix));
    const secure = validateUrl(opts.url);
    this.redis = new Redis(opts.url, {
      ...(secure && opts.tlsCa !== undefined ? { tls: { ca: opts.tlsCa } } : {}),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.timeoutMs,
      connectTimeout: this.timeoutMs,
      retryStrategy: (times) => Math.min(50 * times, 500),
      ...extra,
    }) as ScriptedRedis;
    // ioredis emits 'error' on every failed reconnect; keep the last one for messages instead of
    // crashing the process on an unhandled 'error' event.
    this.redis.on('error', (err: Error) => {
      this.#lastError = err;
    });
    const define = (name: keyof ScriptCommands, lua: string, numberOfKeys?: number): void =>
      this.redis.defineCommand(name, numberOfKeys === undefined ? { lua } : { lua, numberOfKeys });
    define('domicileCreateTenant', CREATE_TENANT, 1);
    define('domicileCasTenant', CAS_TENANT, 1);
    define('domicileRemoveTenant', REMOVE_TENANT, 1);
    define('domicileSyncIndex', SYNC_INDEX, 6);
    define('domicileJoinNode', JOIN_NODE, 2);
    define('domicileAnnounceNode', ANNOUNCE_NODE, 2);
    define('domicileAppendIfLength', APPEND_IF_LENGTH, 1);
    define('domicileRenewLease', RENEW_LEASE, 1);
    define('domicileLeaveNode', LEAVE_NODE, 2);
    define('domicileClaimTenant', CLAIM_TENANT, 3);
  }

  /**
   * Runs `fn` once the connection is ready, all within `timeoutMs`. Redis errors become
   * DIRECTORY_UNAVAILABLE (or INTERNAL for a reply that is a bug, such as a script error).
   * A write that fails this way may still have been applied: the caller re-reads.
   */
  async call<T>(op: string, fn: (redis: ScriptedRedis) => Promise<T>): Promise<T> {
    if (this.#closed) throw new DomicileError('DIRECTORY_UNAVAILABLE', `Redis directory: ${op} after close()`, { op });
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      const work = (async () => {
        await this.#ready(this.timeoutMs);
        return fn(this.redis);
      })();
      work.catch(() => undefined); // settled later than the timeout: already reported
      return await Promise.race([work, timeout]);
    } catch (err) {
      throw this.#wrap(err, op, performance.now() - started);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A second connection with the same options (pub/sub needs its own), queueing while offline. */
  duplicateForSubscribe(): Redis {
    const sub = this.redis.duplicate({ enableOfflineQueue: true, commandTimeout: undefined, lazyConnect: false });
    sub.on('error', (err: Error) => {
      this.#lastError = err;
    });
    return sub;
  }

  /** Closes the connection; later calls fail with DIRECTORY_UNAVAILABLE. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.redis.disconnect(false);
  }

  async #ready(ms: number): Promise<void> {
    const r = this.redis;
    if (r.status === 'ready') return;
    // Between reconnect attempts the last one failed (refused, reset): say so at once rather than
    // hold the caller; an attempt in progress (a slow or black-holed network) is waited for.
    if (r.status === 'reconnecting' || r.status === 'close' || r.status === 'end') throw new Error('not connected');
    if (r.status === 'wait') {
      // First use: connect() resolves on 'ready' and rejects when the first attempt fails; the
      // retry strategy keeps trying in the background either way.
      r.connect().catch(() => undefined);
    }
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer);
        r.off('ready', onReady);
        r.off('end', onEnd);
        if (err) reject(err);
        else resolve();
      };
      const onReady = (): void => done();
      const onEnd = (): void => done(new Error('connection ended'));
      const timer = setTimeout(() => done(new Error(`not connected within ${ms} ms`)), ms);
      r.once('ready', onReady);
      r.once('end', onEnd);
      if (r.status === 'ready') done();
    });
  }

  #wrap(err: unknown, op: string, elapsedMs: number): Error {
    if (isDomicileError(err)) return err;
    const e = err instanceof Error ? err : new Error(String(err));
    const isReply = e.name === 'ReplyError';
    if (isReply && !TRANSIENT_REPLY.test(e.message)) {
      return new DomicileError('INTERNAL', `Redis directory: ${op} failed: ${e.message}`, { op }, { cause: e });
    }
    const why = this.#lastError && !isReply ? `${e.message} (last connection error: ${this.#lastError.message})` : e.message;
    return new DomicileError('DIRECTORY_UNAVAILABLE', `Redis directory unavailable: ${op}: ${why}`, {
      op, elapsedMs: Math.round(elapsedMs), retryAfter: 1,
    }, { cause: e });
  }
}

/** Throws BAD_REQUEST unless `url` is redis:// or rediss://; returns whether it is TLS. */
function validateUrl(url: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new DomicileError('BAD_REQUEST', 'Redis URL: expected redis://[:password@]host:port or rediss://...', { field: 'url' });
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new DomicileError('BAD_REQUEST', `Redis URL: expected redis:// or rediss://, got ${u.protocol}//`, { field: 'url' });
  }
  return u.protocol === 'rediss:';
}

function validatePrefix(prefix: string | undefined): string {
  const p = prefix ?? DEFAULT_KEY_PREFIX;
  // Braces would change the hash tags that keep a tenant's keys in one slot.
  if (!/^[A-Za-z0-9:_.-]{0,64}$/.test(p)) {
    throw new DomicileError('BAD_REQUEST', `Redis key prefix "${p}": use up to 64 of A-Z a-z 0-9 : _ . -`, { field: 'keyPrefix' });
  }
  return p;
}

function validateTimeout(ms: number | undefined): number {
  const t = ms ?? DEFAULT_REDIS_TIMEOUT_MS;
  if (!Number.isInteger(t) || t < 10 || t > 60_000) {
    throw new DomicileError('BAD_REQUEST', `Redis timeoutMs ${String(ms)}: expected an integer from 10 to 60000`, { field: 'timeoutMs' });
  }
  return t;
}
