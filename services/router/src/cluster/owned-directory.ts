/**
 * The directory as a cluster node uses it: Redis, plus the records of the
 * tenants this node owns kept in memory for as long as it holds its lease
 * without a break (docs/cluster.md "Redis unavailable or paused").
 *
 * Why that is safe: while this node's lease is live, nobody else can change
 * where its tenants live or who may use them — a claim needs the lease gone,
 * a move runs on its source (this node), and every other change of a tenant's
 * record (token revocation, erase, restore) is a `/v1/tenants/:id` request,
 * which routing sends to the owner, that is here, through this object. So a
 * record of an owned tenant can be answered from memory, and owned tenants
 * keep serving while Redis is slow, paused or gone — until `canWrite()` turns
 * false at the lease deadline. Records of other nodes' tenants are always read
 * from Redis (routing decisions stay fresh; a Redis outage makes them 503).
 */
import type { Directory, ListQuery, TenantPage, TenantPatch, TenantRecord } from '@domicile/directory';
import type { ClusterNode } from './cluster-node.ts';

/** A {@link Directory} that serves the records of this node's own tenants from memory. */
export class OwnedDirectory implements Directory {
  readonly #inner: Directory;
  readonly #cluster: ClusterNode;
  /** id → record, each stamped with the lease it was read under. */
  readonly #owned = new Map<string, { record: TenantRecord; lease: number }>();
  readonly #max: number;

  constructor(inner: Directory, cluster: ClusterNode, opts: { maxEntries?: number } = {}) {
    this.#inner = inner;
    this.#cluster = cluster;
    this.#max = opts.maxEntries ?? 200_000;
  }

  /** The wrapped directory (for what only it offers, e.g. Redis pub/sub). */
  get inner(): Directory { return this.#inner; }

  async get(id: string): Promise<TenantRecord | undefined> {
    const hit = this.#owned.get(id);
    if (hit) {
      if (hit.lease === this.#cluster.leaseGeneration && this.#cluster.canWrite()) return { ...hit.record };
      this.#owned.delete(id);
    }
    const lease = this.#cluster.leaseGeneration;
    const record = await this.#inner.get(id);
    this.#remember(id, record, lease);
    return record;
  }

  async create(record: TenantRecord): Promise<TenantRecord> {
    this.#owned.delete(record.id);
    return this.#inner.create(record);
  }

  async compareAndSet(id: string, expect: { incarnation: string; epoch: number }, patch: TenantPatch): Promise<TenantRecord | undefined> {
    this.#owned.delete(id);
    const lease = this.#cluster.leaseGeneration;
    const next = await this.#inner.compareAndSet(id, expect, patch);
    this.#remember(id, next, lease);
    return next;
  }

  async remove(id: string, incarnation: string): Promise<boolean> {
    this.#owned.delete(id);
    return this.#inner.remove(id, incarnation);
  }

  list(query: ListQuery): Promise<TenantPage> { return this.#inner.list(query); }
  countByRegion(): Promise<Map<string, number>> { return this.#inner.countByRegion(); }

  /** Forget every record (the lease was lost: peers may have taken tenants over). */
  clear(): void {
    this.#owned.clear();
  }

  async close(): Promise<void> {
    this.#owned.clear();
    await this.#inner.close();
  }

  /** Keeps `record` when it is this node's and was read under the lease still held. */
  #remember(id: string, record: TenantRecord | undefined, lease: number): void {
    if (!record || record.node !== this.#cluster.id || record.state !== 'active') return;
    if (lease !== this.#cluster.leaseGeneration || !this.#cluster.canWrite()) return;
    if (this.#owned.size >= this.#max) this.#owned.delete(this.#owned.keys().next().value!);
    this.#owned.set(id, { record: { ...record }, lease });
  }
}
