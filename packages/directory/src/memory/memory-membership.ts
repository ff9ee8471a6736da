import { DomicileError } from '@domicile/errors';
import type { Directory } from '../directory.ts';
import {
  LeaseKeeper, watchByPolling,
  type ClaimExpectation, type ClaimResult, type LeaseBackend, type LeaseOptions, type LeaseTiming,
  type MemberNode, type Membership, type NodeEvent, type NodeInfo,
} from '../membership.ts';

interface Lease {
  leaseId: string;
  /** performance.now() at which the lease is gone. */
  expiresAt: number;
}

/**
 * The lease table of one process, shared by every {@link MemoryMembership} built on it (the
 * embedded default's nodes, or several simulated nodes in a test). `unavailable` simulates an
 * unreachable store: every call fails with DIRECTORY_UNAVAILABLE.
 */
export class MemoryLeaseStore {
  readonly #leases = new Map<string, Lease>();
  readonly #registry = new Map<string, NodeInfo>();
  /** While true, every call fails as if the store were unreachable (fault tests). */
  unavailable = false;

  /** Live lease of `nodeId`, dropping an expired one. */
  lease(nodeId: string): Lease | undefined {
    this.check();
    const l = this.#leases.get(nodeId);
    if (l && l.expiresAt <= performance.now()) {
      this.#leases.delete(nodeId);
      return undefined;
    }
    return l;
  }

  /** Sets a lease (and registers the node when `node` is given). */
  set(nodeId: string, lease: Lease, node?: NodeInfo): void {
    this.check();
    this.#leases.set(nodeId, lease);
    if (node) this.#registry.set(nodeId, { ...node });
  }

  /** Deletes the lease and the registry entry. */
  delete(nodeId: string): void {
    this.check();
    this.#leases.delete(nodeId);
    this.#registry.delete(nodeId);
  }

  /** Registered nodes in id order. */
  registered(): NodeInfo[] {
    this.check();
    return [...this.#registry.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Throws DIRECTORY_UNAVAILABLE while {@link MemoryLeaseStore.unavailable}. */
  check(): void {
    if (this.unavailable) throw new DomicileError('DIRECTORY_UNAVAILABLE', 'membership store unavailable (simulated)', { retryAfter: 1 });
  }
}

/** Options of {@link MemoryMembership}. */
export interface MemoryMembershipOptions extends LeaseOptions {
  /** The lease table, shared by the nodes of this process. */
  store: MemoryLeaseStore;
  /** The directory whose records {@link MemoryMembership.claimTenant} changes. */
  directory: Directory;
}

/**
 * In-process membership: leases in a {@link MemoryLeaseStore}. For the embedded default (one
 * process, so leases only guard against a stuck event loop) and for unit tests. `claimTenant`
 * checks the leases and calls the directory's compare-and-set without yielding in between, which
 * is atomic as long as the directory applies its compare-and-set synchronously (the embedded one does).
 */
export class MemoryMembership implements Membership {
  readonly #store: MemoryLeaseStore;
  readonly #directory: Directory;
  readonly #keeper: LeaseKeeper;

  constructor(opts: MemoryMembershipOptions) {
    this.#store = opts.store;
    this.#directory = opts.directory;
    const store = this.#store;
    const backend: LeaseBackend = {
      async acquire(node, leaseId, ttlMs) {
        if (store.lease(node.id)) return false;
        store.set(node.id, { leaseId, expiresAt: performance.now() + ttlMs }, node);
        return true;
      },
      async extend(nodeId, leaseId, ttlMs) {
        if (store.lease(nodeId)?.leaseId !== leaseId) return false;
        store.set(nodeId, { leaseId, expiresAt: performance.now() + ttlMs });
        return true;
      },
      async release(nodeId, leaseId) {
        if (store.lease(nodeId)?.leaseId === leaseId) store.delete(nodeId);
      },
      async announce(node, leaseId) {
        const lease = store.lease(node.id);
        if (lease?.leaseId !== leaseId) return false;
        store.set(node.id, lease, node);
        return true;
      },
    };
    this.#keeper = new LeaseKeeper(backend, opts);
  }

  get timing(): LeaseTiming {
    return this.#keeper.timing;
  }

  join(node: NodeInfo): Promise<void> {
    return this.#keeper.join(node);
  }

  renew(): Promise<boolean> {
    return this.#keeper.renew();
  }

  announce(node: NodeInfo): Promise<boolean> {
    return this.#keeper.announce(node);
  }

  leave(): Promise<void> {
    return this.#keeper.leave();
  }

  async liveNodes(region?: string): Promise<NodeInfo[]> {
    return (await this.nodes()).filter((n) => n.live && (region === undefined || n.region === region)).map(({ live: _, ...n }) => n);
  }

  async nodes(): Promise<MemberNode[]> {
    return this.#store.registered().map((n) => ({ ...n, live: this.#store.lease(n.id) !== undefined }));
  }

  canWrite(): boolean {
    return this.#keeper.canWrite();
  }

  writeDeadline(): number | undefined {
    return this.#keeper.writeDeadline();
  }

  onLeaseLost(listener: () => void): () => void {
    return this.#keeper.onLeaseLost(listener);
  }

  watchNodes(listener: (event: NodeEvent) => void, intervalMs = this.timing.renewIntervalMs): () => void {
    return watchByPolling(() => this.liveNodes(), listener, intervalMs);
  }

  async claimTenant(id: string, expect: ClaimExpectation, newNode: string): Promise<ClaimResult> {
    const current = await this.#directory.get(id);
    if (!current) throw new DomicileError('TENANT_NOT_FOUND', `tenant "${id}" not found`, { tenant: id });
    if (current.incarnation !== expect.incarnation || current.epoch !== expect.epoch || current.node !== expect.node) {
      return { claimed: false, reason: 'changed' };
    }
    // From here to the compare-and-set nothing yields, so no lease can change in between.
    if (this.#store.lease(expect.node)) return { claimed: false, reason: 'owner-alive' };
    if (newNode === expect.node || !this.#store.lease(newNode)) return { claimed: false, reason: 'not-live' };
    const record = await this.#directory.compareAndSet(id, { incarnation: expect.incarnation, epoch: expect.epoch }, { node: newNode, epoch: expect.epoch + 1 });
    return record ? { claimed: true, record } : { claimed: false, reason: 'changed' };
  }

  async close(): Promise<void> {
    this.#keeper.close();
  }
}
