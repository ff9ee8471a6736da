/**
 * This process as one node of a cluster (DESIGN §10, docs/cluster.md): its
 * lease in the membership, the write gate that follows the lease, and a short
 * cache of the live nodes so that routing a request does not cost a Redis call
 * (a departure is seen within the cache's age; a request to a node that just
 * died fails and is retried by the client, a 503 with Retry-After).
 */
import { DomicileError } from '@domicile/errors';
import type { Membership, NodeInfo } from '@domicile/directory';

/** Node-to-node protocol version (`major.minor`); peers of another major are refused. */
export const CLUSTER_PROTOCOL_VERSION = '1.0';

/** Major of a `major.minor` version string (NaN when malformed). */
export function protocolMajor(v: string): number {
  return Number.parseInt(String(v).split('.')[0] ?? '', 10);
}

/** How old a cached listing may be and still answer "not live" (ms); older ones are listed again. */
export const MISS_RELIST_MS = 100;

/** Options of {@link ClusterNode}. */
export interface ClusterNodeOptions {
  membership: Membership;
  id: string;
  region: string;
  /** How long a listing of the live nodes is reused (ms). Default 500. */
  cacheMs?: number;
  now?: () => number;
}

/** One node's view of the cluster. */
export class ClusterNode {
  readonly membership: Membership;
  readonly id: string;
  readonly region: string;
  #self: NodeInfo | undefined;
  readonly #cacheMs: number;
  readonly #now: () => number;
  #cache: { at: number; nodes: Promise<NodeInfo[]> } | undefined;
  #leaseGeneration = 0;
  #joinedAt = -Infinity;
  /** Last time renewals were seen failing (the last successful one older than 1.5 periods). */
  #unhealthyAt = -Infinity;
  #probe: NodeJS.Timeout | undefined;

  constructor(opts: ClusterNodeOptions) {
    this.membership = opts.membership;
    this.id = opts.id;
    this.region = opts.region;
    this.#cacheMs = opts.cacheMs ?? 500;
    this.#now = opts.now ?? Date.now;
  }

  /** Takes the lease (announcing `url` and the policy hash); renewals run in the background. */
  async join(url: string, policyHash: string): Promise<void> {
    const self: NodeInfo = { id: this.id, region: this.region, url: url.replace(/\/$/, ''), policyHash, protocolVersion: CLUSTER_PROTOCOL_VERSION };
    await this.membership.join(self);
    this.#self = self;
    this.#leaseGeneration++;
    this.#joinedAt = performance.now();
    this.#startProbe();
    this.#cache = undefined;
  }

  /** After a policy reload: announce the new hash (placement and moves compare hashes). */
  async announcePolicy(policyHash: string): Promise<void> {
    if (!this.#self) return;
    const next = { ...this.#self, policyHash };
    this.#self = next;
    this.#cache = undefined;
    if (!(await this.membership.announce(next))) {
      throw new DomicileError('NODE_UNAVAILABLE', 'the new policy hash was not announced: this node holds no lease (it rejoins with the new hash)', { node: this.id });
    }
  }

  /** After a lost lease: join again with a new lease, announcing the same URL and policy hash. */
  async rejoin(): Promise<void> {
    if (!this.#self) throw new DomicileError('INTERNAL', 'rejoin before join');
    await this.membership.join(this.#self);
    this.#leaseGeneration++;
    this.#joinedAt = performance.now();
    this.#cache = undefined;
  }

  /**
   * True for one lease TTL plus one renewal period after this node (re)joined
   * or saw its own renewals failing: after a Redis pause or outage, peers whose
   * leases lapsed get that long to rejoin before anyone takes their tenants
   * over (a node whose own lease survived the pause must not claim the rest).
   */
  settling(): boolean {
    const t = this.membership.timing;
    return performance.now() - Math.max(this.#joinedAt, this.#unhealthyAt) < t.ttlMs + t.renewIntervalMs;
  }

  /** Samples the lease's health a few times per renewal period (no I/O). */
  #startProbe(): void {
    if (this.#probe) return;
    const t = this.membership.timing;
    this.#probe = setInterval(() => {
      const deadline = this.membership.writeDeadline();
      const lastRenewal = deadline === undefined ? -Infinity : deadline - (t.ttlMs - t.marginMs);
      // Two periods without a successful renewal: renewals are failing (one late renewal on a busy
      // machine is not). Two periods suffice: a Redis pause long enough to lapse a peer's lease
      // (> ttl − period) always spans two of this node's periods (ttl ≥ 3 periods).
      if (performance.now() - lastRenewal > 2 * t.renewIntervalMs) this.#unhealthyAt = performance.now();
    }, Math.max(50, Math.round(t.renewIntervalMs / 4)));
    this.#probe.unref();
  }

  /** Grows with every join: what was learnt under an earlier lease is not trusted under a later one. */
  get leaseGeneration(): number { return this.#leaseGeneration; }


  /** True while the lease allows writes (no I/O; turns false by itself before the lease can expire). */
  canWrite(): boolean {
    return this.#self !== undefined && this.membership.canWrite();
  }

  /** Throws NODE_UNAVAILABLE unless this node may serve its tenants now. */
  assertServing(): void {
    if (!this.canWrite()) {
      throw new DomicileError('NODE_UNAVAILABLE', `node "${this.id}" holds no current lease (Redis unreachable or the lease was lost); it serves no tenant until it renews`, { node: this.id });
    }
  }

  /**
   * Right before acknowledging (docs/cluster.md "Leases"): a lease that lapsed
   * while the request ran means a peer may own the tenant by now, so the answer
   * is 503 instead of a success nobody can stand behind. The request may have
   * committed here; retrying with the same Idempotency-Key is safe.
   */
  assertStillServing(): void {
    if (!this.canWrite()) {
      throw new DomicileError('NODE_UNAVAILABLE', `node "${this.id}" lost its lease while the request ran: it may have committed here, but is not acknowledged; retry (with the same Idempotency-Key)`, { node: this.id, acknowledged: false });
    }
  }

  /**
   * Live nodes (cached for a short while), optionally of one region, in id order. No node of
   * `region` in a cached listing is looked up again on a fresh one (see {@link ClusterNode.liveNode}).
   */
  async liveNodes(region?: string): Promise<NodeInfo[]> {
    if (region === undefined) return this.#listing(this.#cacheMs);
    const inRegion = (all: NodeInfo[]): NodeInfo[] => all.filter((n) => n.region === region);
    const cached = inRegion(await this.#listing(this.#cacheMs));
    return cached.length > 0 ? cached : inRegion(await this.#listing(Math.min(this.#cacheMs, MISS_RELIST_MS)));
  }

  /**
   * The live node with this id, or undefined (no lease: dead, or not started). A miss in a cached
   * listing is checked on a fresh one first: the node may have (re)joined since — after a Redis
   * pause every node rejoins, and a stale listing would answer 503 for tenants whose owner is back.
   * Fresh listings after misses are at most one per {@link MISS_RELIST_MS} (a dead owner's tenants
   * cost no Redis call per request).
   */
  async liveNode(id: string): Promise<NodeInfo | undefined> {
    return (await this.#listing(this.#cacheMs)).find((n) => n.id === id)
      ?? (await this.#listing(Math.min(this.#cacheMs, MISS_RELIST_MS))).find((n) => n.id === id);
  }

  /** Every live node, from a listing at most `maxAgeMs` old (concurrent callers share one call). */
  async #listing(maxAgeMs: number): Promise<NodeInfo[]> {
    const now = this.#now();
    if (!this.#cache || now - this.#cache.at > maxAgeMs) {
      const nodes = this.membership.liveNodes();
      this.#cache = { at: now, nodes };
      nodes.catch(() => { if (this.#cache?.nodes === nodes) this.#cache = undefined; });
    }
    return this.#cache.nodes;
  }

  /** Forget the cached listing (after a peer answered that it is not who we thought). */
  invalidate(): void {
    this.#cache = undefined;
  }

  /**
   * 409 POLICY_MISMATCH while a live node announces another policy hash than
   * `hash` (placement and moves wait until every node runs the same file).
   */
  async assertPolicyAgreed(hash: string): Promise<void> {
    let others = (await this.liveNodes()).filter((n) => n.policyHash !== hash);
    if (others.length > 0) {
      // Refuse on a fresh listing only: the odd node may have left within the cache's age.
      this.invalidate();
      others = (await this.liveNodes()).filter((n) => n.policyHash !== hash);
    }
    if (others.length > 0) {
      throw new DomicileError('POLICY_MISMATCH', `nodes disagree on the placement policy: ${others.map((n) => n.id).join(', ')} run another file than this node; reload the same policy everywhere (SIGHUP)`, {
        nodes: others.map((n) => ({ id: n.id, policyHash: n.policyHash })),
        policyHash: hash,
      });
    }
  }

  /** Drops the lease (graceful stop): peers may take this node's tenants at once. */
  async leave(): Promise<void> {
    if (this.#probe) clearInterval(this.#probe);
    this.#probe = undefined;
    if (!this.#self) {
      await this.membership.close();
      return;
    }
    this.#self = undefined;
    try {
      await this.membership.leave();
    } finally {
      await this.membership.close();
    }
  }
}
