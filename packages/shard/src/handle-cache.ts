/**
 * A worker's LRU of open shard handles (DESIGN §7). The process-wide bound is
 * split evenly across workers. A handle that is in use or pinned is never
 * closed: when the LRU evicts it, it is parked in a side map and closed once
 * released.
 */
import { LRUCache } from 'lru-cache';
import type { ShardHandle } from './open-shard.ts';
import type { ShardRef } from './types.ts';

/** Why a handle is being closed; `beforeClose` may act differently (e.g. no shipping for `erase`). */
export type CloseReason = 'evict' | 'release' | 'shutdown' | 'erase' | 'replace';

/** What the cache needs from its owner. */
export interface HandleCacheOptions {
  /** Handles kept open by this cache (at least 1). */
  max: number;
  /** Open a handle for `ref` (throws a DomicileError on failure). */
  open(ref: ShardRef): ShardHandle;
  /**
   * Runs before every close while the handle is still usable. Replication will
   * hook "ship committed WAL frames, then close" here (DESIGN §8).
   */
  beforeClose?(handle: ShardHandle, reason: CloseReason): void;
  /** Reports a failure while closing (the handle is closed anyway). */
  onCloseError?(handle: ShardHandle, reason: CloseReason, err: unknown): void;
}

/** Counters for the pool's stats. */
export interface HandleCacheStats {
  open: number;
  opens: number;
  evictions: number;
}

/** Per-worker LRU of shard handles keyed by tenant. */
export class HandleCache {
  readonly #opts: HandleCacheOptions;
  readonly #lru: LRUCache<string, ShardHandle>;
  /** Handles evicted while in use or pinned, kept open until released. */
  readonly #parked = new Map<string, ShardHandle>();
  readonly #pinned = new Set<string>();
  /** Handles inside a `use` callback, with nesting depth. */
  readonly #inUse = new Map<ShardHandle, number>();
  #opens = 0;
  #evictions = 0;
  /** Tenants whose handle closed since the last `drainClosed()`, so the pool can forget its affinity. */
  #closed: string[] = [];

  constructor(opts: HandleCacheOptions) {
    this.#opts = Object.freeze({ ...opts, max: Math.max(1, Math.floor(opts.max)) });
    this.#lru = new LRUCache<string, ShardHandle>({
      max: this.#opts.max,
      dispose: (handle, tenant, why) => {
        if (why !== 'evict') return;
        this.#evictions++;
        this.#retire(tenant, handle, 'evict');
      },
    });
  }

  /**
   * Run `fn` with the tenant's handle, opening it if needed. The handle cannot
   * be closed while `fn` runs. A cached handle of another incarnation or path
   * is closed and replaced (the open re-checks `_domicile_meta`).
   */
  use<T>(ref: ShardRef, fn: (handle: ShardHandle) => T): T {
    let handle = this.#lru.get(ref.tenant) ?? this.#parked.get(ref.tenant);
    if (handle && (handle.incarnation !== ref.incarnation || handle.path !== ref.path)) {
      this.close(ref.tenant, 'replace');
      handle = undefined;
    }
    if (!handle) {
      handle = this.#opts.open(ref);
      this.#opens++;
    }
    this.#inUse.set(handle, (this.#inUse.get(handle) ?? 0) + 1);
    try {
      // Inserting may evict the least recently used entry, never this one.
      if (!this.#parked.has(ref.tenant)) this.#lru.set(ref.tenant, handle);
      return fn(handle);
    } finally {
      const depth = this.#inUse.get(handle)! - 1;
      if (depth > 0) this.#inUse.set(handle, depth);
      else this.#inUse.delete(handle);
      if (depth === 0 && this.#parked.get(ref.tenant) === handle && !this.#pinned.has(ref.tenant)) {
        this.#parked.delete(ref.tenant);
        this.#closeNow(handle, 'evict');
      }
    }
  }

  /** Put a freshly created handle in the cache (create opens it anyway). */
  adopt(handle: ShardHandle): void {
    this.close(handle.tenant, 'replace');
    this.#opens++;
    this.#lru.set(handle.tenant, handle);
  }

  /** Keep the tenant's handle open even when the LRU evicts it (for interactive transactions). */
  pin(tenant: string): void {
    this.#pinned.add(tenant);
  }

  /** Undo `pin`; a handle evicted meanwhile is closed now. */
  unpin(tenant: string): void {
    this.#pinned.delete(tenant);
    const parked = this.#parked.get(tenant);
    if (parked && !this.#inUse.has(parked)) {
      this.#parked.delete(tenant);
      this.#closeNow(parked, 'evict');
    }
  }

  /** Close the tenant's handle now, pinned or not (erase, release after re-homing). Returns whether one was open. */
  close(tenant: string, reason: CloseReason): boolean {
    let closed = false;
    const cached = this.#lru.peek(tenant);
    if (cached) {
      this.#lru.delete(tenant);
      this.#closeNow(cached, reason);
      closed = true;
    }
    const parked = this.#parked.get(tenant);
    if (parked) {
      this.#parked.delete(tenant);
      this.#closeNow(parked, reason);
      closed = true;
    }
    this.#pinned.delete(tenant);
    return closed;
  }

  /** Close every handle (shutdown). */
  closeAll(reason: CloseReason): number {
    const tenants = [...this.#lru.keys(), ...this.#parked.keys()];
    let n = 0;
    for (const t of new Set(tenants)) if (this.close(t, reason)) n++;
    return n;
  }

  /** Whether the tenant has an open handle here. */
  has(tenant: string): boolean {
    return this.#lru.has(tenant) || this.#parked.has(tenant);
  }

  /** Tenants closed since the last call. */
  drainClosed(): string[] {
    const out = this.#closed;
    this.#closed = [];
    return out;
  }

  /** Open handles and counters. */
  stats(): HandleCacheStats {
    return { open: this.#lru.size + this.#parked.size, opens: this.#opens, evictions: this.#evictions };
  }

  #retire(tenant: string, handle: ShardHandle, reason: CloseReason): void {
    if (this.#inUse.has(handle) || this.#pinned.has(tenant)) {
      this.#parked.set(tenant, handle);
      return;
    }
    this.#closeNow(handle, reason);
  }

  #closeNow(handle: ShardHandle, reason: CloseReason): void {
    try {
      this.#opts.beforeClose?.(handle, reason);
    } catch (err) {
      this.#opts.onCloseError?.(handle, reason, err);
    }
    try {
      handle.db.close();
    } catch (err) {
      this.#opts.onCloseError?.(handle, reason, err);
    }
    this.#closed.push(handle.tenant);
  }
}
