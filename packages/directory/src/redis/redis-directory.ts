import type { Redis } from 'ioredis';
import { DomicileError } from '@domicile/errors';
import {
  decodeCursor, encodeCursor,
  type Directory, type ListQuery, type TenantPage, type TenantPatch, type TenantRecord,
} from '../directory.ts';
import type { ClaimExpectation, ClaimResult, Membership } from '../membership.ts';
import { RedisConnection, type RedisConnectionOptions } from './redis-connection.ts';

/** Options of {@link RedisDirectory}. */
export type RedisDirectoryOptions = RedisConnectionOptions;

/** A tenant's node or epoch changed (or the tenant was removed): drop cached placements. */
export interface EpochChange {
  tenant: string;
  /** The new epoch (the last one, when removed). */
  epoch: number;
  /** The new owner. */
  node: string;
  /** Present and true when the record was removed. */
  removed?: true;
}

/** Callbacks of {@link RedisDirectory.subscribe}. */
export interface EpochSubscriber {
  /** One change, in the order Redis published them. */
  onChange(change: EpochChange): void;
  /**
   * The subscription was re-established after a disconnect: changes may have been missed,
   * so every cached placement must be dropped.
   */
  onResync?(): void;
}

const TENANT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const PATCH_FIELDS = new Set(['region', 'node', 'epoch', 'state', 'tokensValidAfter']);

/** Fields → record; undefined for an empty hash. */
function toRecord(h: Record<string, string>): TenantRecord | undefined {
  if (h.id === undefined) return undefined;
  return {
    id: h.id,
    incarnation: h.incarnation!,
    residency: h.residency!,
    region: h.region!,
    node: h.node!,
    epoch: Number(h.epoch),
    state: h.state as TenantRecord['state'],
    durability: h.durability as TenantRecord['durability'],
    createdAt: h.createdAt!,
    tokensValidAfter: Number(h.tokensValidAfter),
  };
}

/** Flat `[field, value, ...]` (a script's HGETALL) → object. */
function pairs(flat: (string | number)[], from: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = from; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  return out;
}

function recordFields(r: TenantRecord): string[] {
  return [
    'id', r.id, 'incarnation', r.incarnation, 'residency', r.residency, 'region', r.region, 'node', r.node,
    'epoch', String(r.epoch), 'state', r.state, 'durability', r.durability, 'createdAt', r.createdAt,
    'tokensValidAfter', String(r.tokensValidAfter),
  ];
}

/**
 * The cluster's directory on Redis (DESIGN §10; data model in docs/cluster.md). Each tenant is one
 * hash in its own slot (`{tenant}` tag), created and changed only by Lua scripts, so it also runs on
 * Redis Cluster. Listing and counting read secondary indexes (sorted sets in the `{idx}` slot) that
 * are updated after each change, ordered by the tenant's revision, and can be rebuilt from the
 * hashes with {@link RedisDirectory.rebuildIndexes}. Every call answers within `timeoutMs` or fails
 * with DIRECTORY_UNAVAILABLE; a write that failed that way may have been applied (re-read it).
 */
export class RedisDirectory implements Directory {
  readonly #conn: RedisConnection;
  /** Tenants whose index update failed (→ the rev of their removal, if they were removed); retried before the next listing. */
  readonly #pendingIndex = new Map<string, string | undefined>();
  readonly #subscribers = new Set<Redis>();

  /** The options it was built with (a RedisMembership opens its own connection with them). */
  readonly options: Readonly<RedisDirectoryOptions>;

  constructor(opts: RedisDirectoryOptions) {
    this.#conn = new RedisConnection(opts);
    this.options = Object.freeze({ ...opts });
  }

  /** The bound of one call (ms). */
  get timeoutMs(): number {
    return this.#conn.timeoutMs;
  }

  async create(record: TenantRecord): Promise<TenantRecord> {
    // The id sits inside the key's hash tag: anything but a valid id could move it to another slot.
    if (!TENANT_ID.test(record.id)) throw new DomicileError('INVALID_TENANT_ID', `tenant id "${record.id}" is not valid`, { tenant: record.id });
    const key = this.#conn.keys.tenant(record.id);
    const rev = await this.#conn.call('create', (r) => r.domicileCreateTenant(key, ...recordFields(record)));
    if (rev === null) throw new DomicileError('TENANT_EXISTS', `tenant "${record.id}" exists`, { tenant: record.id });
    await this.#syncIndex(record.id, rev, record);
    return { ...record };
  }

  async get(id: string): Promise<TenantRecord | undefined> {
    const h = await this.#conn.call('get', (r) => r.hgetall(this.#conn.keys.tenant(id)));
    return toRecord(h);
  }

  async list(query: ListQuery): Promise<TenantPage> {
    let after = '';
    if (query.cursor !== undefined) {
      const id = decodeCursor(query.cursor);
      if (id === undefined) throw new DomicileError('BAD_REQUEST', 'cursor is not valid', { field: 'cursor' });
      after = id;
    }
    await this.#flushPendingIndex();
    const [all, byRegion, byResidency, byNode] = this.#conn.keys.indexKeys();
    // The most selective index drives the scan; every candidate is checked against its record, so
    // an index entry that lags behind a change never yields a wrong tenant.
    const [key, value] = query.node !== undefined ? [byNode, query.node]
      : query.region !== undefined ? [byRegion, query.region]
      : query.residency !== undefined ? [byResidency, query.residency]
      : [all, undefined];
    const head = value === undefined ? '' : `${value}\0`;
    const max = value === undefined ? '+' : `(${value}\u0001`;
    let min = after === '' ? (value === undefined ? '-' : `[${head}`) : `(${head}${after}`;
    const want = query.limit + 1;
    const found: TenantRecord[] = [];
    for (;;) {
      const batch = Math.max(want - found.length, 16);
      const members = await this.#conn.call('list', (r) => r.zrangebylex(key, min, max, 'LIMIT', 0, batch));
      const ids = members.map((m) => m.slice(head.length));
      const records = await this.#conn.call('list', (r) => Promise.all(ids.map((id) => r.hgetall(this.#conn.keys.tenant(id)))));
      for (const h of records) {
        const rec = toRecord(h);
        if (!rec) continue;
        if (query.region !== undefined && rec.region !== query.region) continue;
        if (query.residency !== undefined && rec.residency !== query.residency) continue;
        if (query.node !== undefined && rec.node !== query.node) continue;
        found.push(rec);
      }
      if (found.length >= want || members.length < batch) break;
      min = `(${members.at(-1)!}`;
    }
    const tenants = found.slice(0, query.limit);
    const last = tenants.at(-1);
    return found.length > query.limit && last ? { tenants, nextCursor: encodeCursor(last.id) } : { tenants };
  }

  async compareAndSet(id: string, expect: { incarnation: string; epoch: number }, patch: TenantPatch): Promise<TenantRecord | undefined> {
    const args: string[] = [];
    for (const [k, v] of Object.entries(patch)) {
      if (v === undefined) continue;
      if (!PATCH_FIELDS.has(k)) throw new DomicileError('BAD_REQUEST', `compareAndSet cannot change "${k}"`, { field: k });
      args.push(k, String(v));
    }
    const key = this.#conn.keys.tenant(id);
    const out = await this.#conn.call('compareAndSet', (r) =>
      r.domicileCasTenant(key, expect.incarnation, String(expect.epoch), this.#conn.keys.epochChannel(), ...args));
    if (out[0] === -1) throw new DomicileError('TENANT_NOT_FOUND', `tenant "${id}" not found`, { tenant: id });
    if (out[0] !== 1) return undefined;
    const h = pairs(out, 1);
    const rec = toRecord(h)!;
    await this.#syncIndex(id, h.rev!, rec);
    return rec;
  }

  /**
   * The failover's fencing step (see {@link Membership.claimTenant}), one Lua script over the tenant's
   * hash and the two nodes' leases. On Redis Cluster those keys live in different slots: see
   * docs/cluster.md, "Redis Cluster".
   */
  async claimTenant(id: string, expect: ClaimExpectation, newNode: string): Promise<ClaimResult> {
    const k = this.#conn.keys;
    const out = await this.#conn.call('claimTenant', (r) => r.domicileClaimTenant(
      k.tenant(id), k.lease(expect.node), k.lease(newNode),
      expect.incarnation, String(expect.epoch), expect.node, newNode, k.epochChannel()));
    switch (out[0]) {
      case -1: throw new DomicileError('TENANT_NOT_FOUND', `tenant "${id}" not found`, { tenant: id });
      case 0: return { claimed: false, reason: 'changed' };
      case -2: return { claimed: false, reason: 'owner-alive' };
      case -3: return { claimed: false, reason: 'not-live' };
    }
    const h = pairs(out, 1);
    const record = toRecord(h)!;
    await this.#syncIndex(id, h.rev!, record);
    return { claimed: true, record };
  }

  async remove(id: string, incarnation: string): Promise<boolean> {
    const key = this.#conn.keys.tenant(id);
    const out = await this.#conn.call('remove', (r) => r.domicileRemoveTenant(key, incarnation, this.#conn.keys.epochChannel()));
    if (out[0] !== 1) return false;
    await this.#syncIndex(id, String(out[1]), undefined);
    return true;
  }

  async countByRegion(): Promise<Map<string, number>> {
    await this.#flushPendingIndex();
    const counts = await this.#conn.call('countByRegion', (r) => r.hgetall(this.#conn.keys.indexKeys()[5]));
    return new Map(Object.entries(counts).map(([region, n]) => [region, Number(n)] as const).filter(([, n]) => n > 0));
  }

  /**
   * Rebuilds every secondary index from the tenant hashes (SCAN): after a crash between a change
   * and its index update, or after restoring Redis from a backup. Returns the number of tenants
   * indexed. Changes made while it runs are indexed by their own writers; run it again if a
   * tenant was removed during the rebuild.
   */
  async rebuildIndexes(): Promise<number> {
    const keys = this.#conn.keys;
    await this.#conn.call('rebuildIndexes', (r) => r.del(...keys.indexKeys()));
    let cursor = '0';
    let n = 0;
    do {
      const [next, found] = await this.#conn.call('rebuildIndexes', (r) => r.scan(cursor, 'MATCH', keys.tenantPattern(), 'COUNT', 500));
      cursor = next;
      for (const key of found) {
        const h = await this.#conn.call('rebuildIndexes', (r) => r.hgetall(key));
        const rec = toRecord(h);
        if (!rec || h.rev === undefined) continue;
        await this.#conn.call('rebuildIndexes', (r) => r.domicileSyncIndex(...keys.indexKeys(), rec.id, h.rev!, '1', rec.incarnation, rec.region, rec.residency, rec.node));
        n++;
      }
    } while (cursor !== '0');
    this.#pendingIndex.clear();
    return n;
  }

  /**
   * Calls `subscriber.onChange` for every change of a tenant's node or epoch (and every removal)
   * made through any RedisDirectory on this Redis and prefix. Resolves once subscribed (bounded by
   * `timeoutMs`); the returned function unsubscribes. Pub/sub is at-most-once: after a reconnect
   * `onResync` tells the subscriber that it may have missed changes.
   */
  async subscribe(subscriber: EpochSubscriber): Promise<() => Promise<void>> {
    const sub = this.#conn.duplicateForSubscribe();
    this.#subscribers.add(sub);
    const channel = this.#conn.keys.epochChannel();
    let subscribedOnce = false;
    sub.on('message', (ch: string, message: string) => {
      if (ch !== channel) return;
      let change: EpochChange;
      try {
        change = JSON.parse(message) as EpochChange;
      } catch {
        return;
      }
      subscriber.onChange(change);
    });
    sub.on('ready', () => {
      // ioredis re-subscribes by itself after a reconnect; the first 'ready' is the initial one.
      if (subscribedOnce) subscriber.onResync?.();
    });
    const unsubscribe = async (): Promise<void> => {
      if (!this.#subscribers.delete(sub)) return;
      sub.disconnect(false);
    };
    try {
      await this.#conn.call('subscribe', () => sub.subscribe(channel));
      subscribedOnce = true;
    } catch (err) {
      await unsubscribe();
      throw err;
    }
    return unsubscribe;
  }

  async close(): Promise<void> {
    for (const sub of this.#subscribers) sub.disconnect(false);
    this.#subscribers.clear();
    await this.#conn.close();
  }

  /**
   * Index update after a change. Its failure does not fail the change (the record is the truth and
   * the caller must learn that its write applied); the tenant is retried before the next listing.
   */
  async #syncIndex(id: string, rev: string, rec: TenantRecord | undefined): Promise<void> {
    const keys = this.#conn.keys.indexKeys();
    const args = rec ? [id, rev, '1', rec.incarnation, rec.region, rec.residency, rec.node] : [id, rev, '0', '', '', '', ''];
    try {
      await this.#conn.call('index', (r) => r.domicileSyncIndex(...keys, ...args));
      this.#pendingIndex.delete(id);
    } catch {
      this.#pendingIndex.set(id, rec ? undefined : rev);
    }
  }

  async #flushPendingIndex(): Promise<void> {
    for (const [id, removedRev] of [...this.#pendingIndex]) {
      const h = await this.#conn.call('index', (r) => r.hgetall(this.#conn.keys.tenant(id)));
      const rec = toRecord(h);
      if (rec && h.rev !== undefined) await this.#syncIndex(id, h.rev, rec);
      else if (removedRev !== undefined) await this.#syncIndex(id, removedRev, undefined);
      else this.#pendingIndex.delete(id); // removed by another directory, which indexed the removal
      if (this.#pendingIndex.has(id)) {
        throw new DomicileError('DIRECTORY_UNAVAILABLE', 'Redis directory unavailable: index update', { op: 'index', retryAfter: 1 });
      }
    }
  }
}
