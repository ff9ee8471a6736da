import {
  LeaseKeeper, watchByPolling,
  type ClaimExpectation, type ClaimResult, type LeaseBackend, type LeaseOptions, type LeaseTiming,
  type MemberNode, type Membership, type NodeEvent, type NodeInfo,
} from '../membership.ts';
import { RedisConnection } from './redis-connection.ts';
import type { RedisDirectory } from './redis-directory.ts';

/** Options of {@link RedisMembership}. */
export interface RedisMembershipOptions extends LeaseOptions {
  /** The cluster's directory: same Redis and key prefix; `claimTenant` changes its records. */
  directory: RedisDirectory;
}

/**
 * Membership on Redis: a lease is a key holding a random lease id with a PX TTL (slot `{nodes}`),
 * taken with SET NX, extended by a script only while it still holds the caller's lease id, and
 * deleted on leave. Renewals use their own connection, so a slow directory call never delays them.
 */
export class RedisMembership implements Membership {
  readonly #conn: RedisConnection;
  readonly #directory: RedisDirectory;
  readonly #keeper: LeaseKeeper;

  constructor(opts: RedisMembershipOptions) {
    this.#directory = opts.directory;
    const conn = new RedisConnection(opts.directory.options);
    this.#conn = conn;
    const k = conn.keys;
    const backend: LeaseBackend = {
      async acquire(node, leaseId, ttlMs) {
        const info = JSON.stringify({ id: node.id, region: node.region, url: node.url, policyHash: node.policyHash, protocolVersion: node.protocolVersion });
        return (await conn.call('join', (r) => r.domicileJoinNode(k.lease(node.id), k.registry(), leaseId, String(ttlMs), node.id, info))) === 1;
      },
      async extend(nodeId, leaseId, ttlMs) {
        return (await conn.call('renew', (r) => r.domicileRenewLease(k.lease(nodeId), leaseId, String(ttlMs)))) === 1;
      },
      async release(nodeId, leaseId) {
        await conn.call('leave', (r) => r.domicileLeaveNode(k.lease(nodeId), k.registry(), leaseId, nodeId));
      },
      async announce(node, leaseId) {
        const info = JSON.stringify({ id: node.id, region: node.region, url: node.url, policyHash: node.policyHash, protocolVersion: node.protocolVersion });
        return (await conn.call('announce', (r) => r.domicileAnnounceNode(k.lease(node.id), k.registry(), leaseId, node.id, info))) === 1;
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
    const k = this.#conn.keys;
    const registry = await this.#conn.call('nodes', (r) => r.hgetall(k.registry()));
    const ids = Object.keys(registry).sort();
    if (ids.length === 0) return [];
    // One slot ({nodes}), so one MGET answers for every lease, on Redis Cluster too.
    const leases = await this.#conn.call('nodes', (r) => r.mget(...ids.map((id) => k.lease(id))));
    return ids.map((id, i) => ({ ...(JSON.parse(registry[id]!) as NodeInfo), live: leases[i] !== null }));
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

  claimTenant(id: string, expect: ClaimExpectation, newNode: string): Promise<ClaimResult> {
    return this.#directory.claimTenant(id, expect, newNode);
  }

  async close(): Promise<void> {
    this.#keeper.close();
    await this.#conn.close();
  }
}
