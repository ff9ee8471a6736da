import { randomUUID } from 'node:crypto';
import { DomicileError } from '@domicile/errors';
import type { TenantRecord } from './directory.ts';

/** What a node announces about itself when it joins (DESIGN §10). */
export interface NodeInfo {
  /** `DOMICILE_NODE_ID`: unique in the cluster. */
  id: string;
  /** `DOMICILE_REGION`. */
  region: string;
  /** `DOMICILE_PUBLIC_URL`: where other nodes and redirected clients reach it. */
  url: string;
  /** Hash of the node's policy file; nodes refuse placement and moves while hashes differ. */
  policyHash: string;
  /** Node-to-node protocol version (`major.minor`); peers of an unknown major are refused. */
  protocolVersion: string;
}

/** A node known to the membership, live or not. */
export interface MemberNode extends NodeInfo {
  /** True while its lease exists. */
  live: boolean;
}

/** A change seen by {@link Membership.watchNodes}. */
export interface NodeEvent {
  type: 'joined' | 'left';
  node: NodeInfo;
}

/** What {@link Membership.claimTenant} expects of the tenant's current record. */
export interface ClaimExpectation {
  incarnation: string;
  epoch: number;
  /** The owner whose lease must be gone. */
  node: string;
}

/** Outcome of {@link Membership.claimTenant}. */
export type ClaimResult =
  | { claimed: true; record: TenantRecord }
  | {
      claimed: false;
      /**
       * `changed`: the record no longer matches the expectation (someone else moved or claimed it);
       * `owner-alive`: the owner still holds a lease; `not-live`: the new node holds no lease (or is the owner).
       */
      reason: 'changed' | 'owner-alive' | 'not-live';
    };

/** Lease timing; see {@link resolveLeaseTiming}. */
export interface LeaseOptions {
  /** `DOMICILE_LEASE_TTL_MS`. Default 5000. */
  ttlMs?: number;
  /** Writes stop this long before the lease could expire. Default `min(max(500, ttl/5), ttl/2)`. */
  marginMs?: number;
  /** Background renewal period. Default ttl/3. */
  renewIntervalMs?: number;
  /**
   * Renew in the background (default true). False: only explicit {@link Membership.renew} calls
   * renew, e.g. a node that ties renewals to its own health checks, or a test that freezes a node.
   */
  autoRenew?: boolean;
}

/** Validated lease timing. */
export interface LeaseTiming {
  readonly ttlMs: number;
  readonly marginMs: number;
  readonly renewIntervalMs: number;
}

/** Default of `DOMICILE_LEASE_TTL_MS`. */
export const DEFAULT_LEASE_TTL_MS = 5000;

/**
 * Defaults and validation of lease timing. The write window after a renewal that started at `t` is
 * `[t, t + ttl − margin)`: the lease on the server cannot expire before `t + ttl` (the renewal
 * reached it no earlier than `t`), and the margin absorbs the rate difference between this
 * node's monotonic clock and the server's clock (docs/cluster.md, "Leases").
 */
export function resolveLeaseTiming(opts: LeaseOptions = {}): LeaseTiming {
  const ttlMs = opts.ttlMs ?? DEFAULT_LEASE_TTL_MS;
  if (!Number.isInteger(ttlMs) || ttlMs < 50) throw new DomicileError('BAD_REQUEST', `lease ttlMs ${String(ttlMs)}: expected an integer ≥ 50`, { field: 'ttlMs' });
  const marginMs = opts.marginMs ?? Math.min(Math.max(500, Math.round(ttlMs / 5)), Math.round(ttlMs / 2));
  if (!(marginMs > 0 && marginMs < ttlMs)) throw new DomicileError('BAD_REQUEST', `lease marginMs ${String(marginMs)}: expected 0 < margin < ttl (${ttlMs})`, { field: 'marginMs' });
  const renewIntervalMs = opts.renewIntervalMs ?? Math.round(ttlMs / 3);
  if (!(renewIntervalMs > 0 && renewIntervalMs < ttlMs - marginMs)) {
    throw new DomicileError('BAD_REQUEST', `lease renewIntervalMs ${String(renewIntervalMs)}: expected 0 < interval < ttl − margin (${ttlMs - marginMs})`, { field: 'renewIntervalMs' });
  }
  return Object.freeze({ ttlMs, marginMs, renewIntervalMs });
}

/**
 * Cluster membership with TTL leases and the failover's fencing step (DESIGN §10, invariant 1).
 * Implementations: in-memory (embedded default, tests) and Redis. All pass `membership.contract.ts`.
 */
export interface Membership {
  /** Lease timing in force. */
  readonly timing: LeaseTiming;
  /**
   * Takes this node's lease and renews it in the background. A lease of the same node id that is
   * still live (a previous process) is waited out, up to one TTL; past that → NODE_UNAVAILABLE.
   */
  join(node: NodeInfo): Promise<void>;
  /** One renewal now. False when the lease is gone (expired, or taken by another process). */
  renew(): Promise<boolean>;
  /**
   * Replaces what this node announced (`id` unchanged; e.g. its policy hash after a reload) while it
   * holds its lease. False when the lease is gone (nothing changed).
   */
  announce(node: NodeInfo): Promise<boolean>;
  /** Drops the lease and stops renewing; other nodes may claim this node's tenants at once. */
  leave(): Promise<void>;
  /** Nodes with a live lease, optionally of one region, in id order. */
  liveNodes(region?: string): Promise<NodeInfo[]>;
  /** Every node that joined and did not leave, live or not (for the cluster view), in id order. */
  nodes(): Promise<MemberNode[]>;
  /**
   * True while this node may accept writes: it holds a lease whose last successful renewal started
   * less than `ttl − margin` ago on the monotonic clock. Turns false by itself, without any I/O.
   */
  canWrite(): boolean;
  /** `performance.now()` at which {@link canWrite} turns false, or undefined without a lease. */
  writeDeadline(): number | undefined;
  /** Called once when a renewal finds the lease gone; returns an unsubscribe function. */
  onLeaseLost(listener: () => void): () => void;
  /**
   * Polls the live nodes every `intervalMs` (default: the renewal period) and reports joins and
   * departures (a leave or an expired lease). Returns a function that stops the polling.
   */
  watchNodes(listener: (event: NodeEvent) => void, intervalMs?: number): () => void;
  /**
   * Fencing step of a failover, atomic: sets the tenant to `epoch + 1` on `newNode` only if its
   * record still matches `expect`, `expect.node` holds no live lease, and `newNode` holds one.
   * A missing tenant → TENANT_NOT_FOUND.
   */
  claimTenant(id: string, expect: ClaimExpectation, newNode: string): Promise<ClaimResult>;
  /** Stops renewing without leaving (the lease expires by itself); releases connections. */
  close(): Promise<void>;
}

/** The storage side of a lease, implemented per backend; {@link LeaseKeeper} does the timing. */
export interface LeaseBackend {
  /** Creates the lease if no live one exists for `node.id`. */
  acquire(node: NodeInfo, leaseId: string, ttlMs: number): Promise<boolean>;
  /** Extends the lease only if it is still `leaseId`. */
  extend(nodeId: string, leaseId: string, ttlMs: number): Promise<boolean>;
  /** Deletes the lease and the registry entry if the lease is still `leaseId`. */
  release(nodeId: string, leaseId: string): Promise<void>;
  /** Replaces the registry entry of `node.id` if its lease is still `leaseId`. */
  announce(node: NodeInfo, leaseId: string): Promise<boolean>;
}

/**
 * Lease timing shared by every Membership: join with a wait for a previous holder, background
 * renewal (never overlapping), `canWrite()` from the start time of the last successful renewal.
 */
export class LeaseKeeper {
  readonly timing: LeaseTiming;
  readonly #backend: LeaseBackend;
  #node: NodeInfo | undefined;
  #leaseId: string | undefined;
  #renewedAt = -Infinity;
  #timer: NodeJS.Timeout | undefined;
  /** Bumped on every join and stop, so that a renewal chain of an earlier join ends. */
  #generation = 0;
  readonly #lostListeners = new Set<() => void>();
  readonly #autoRenew: boolean;

  constructor(backend: LeaseBackend, opts: LeaseOptions) {
    this.#backend = backend;
    this.timing = resolveLeaseTiming(opts);
    this.#autoRenew = opts.autoRenew ?? true;
  }

  /** The joined node, if any. */
  get node(): NodeInfo | undefined {
    return this.#node;
  }

  async join(node: NodeInfo): Promise<void> {
    if (this.#leaseId !== undefined) throw new DomicileError('BAD_REQUEST', `node "${node.id}" has already joined`, { node: node.id });
    const leaseId = randomUUID();
    const giveUpAt = performance.now() + this.timing.ttlMs + this.timing.renewIntervalMs;
    for (;;) {
      const started = performance.now();
      if (await this.#backend.acquire(node, leaseId, this.timing.ttlMs)) {
        this.#node = node;
        this.#leaseId = leaseId;
        this.#renewedAt = started;
        this.#generation++;
        if (this.#autoRenew) this.#schedule(this.#generation);
        return;
      }
      if (performance.now() > giveUpAt) {
        throw new DomicileError('NODE_UNAVAILABLE', `node id "${node.id}" is held by another live process (its lease did not expire within ${this.timing.ttlMs} ms)`, { node: node.id });
      }
      await new Promise((r) => setTimeout(r, Math.max(10, Math.round(this.timing.renewIntervalMs / 2))));
    }
  }

  async renew(): Promise<boolean> {
    const node = this.#node;
    const leaseId = this.#leaseId;
    if (!node || leaseId === undefined) return false;
    // Measured before the request leaves: the server extends the lease no earlier than this.
    const started = performance.now();
    const ok = await this.#backend.extend(node.id, leaseId, this.timing.ttlMs);
    if (this.#leaseId !== leaseId) return false; // left or lost meanwhile
    if (ok) {
      this.#renewedAt = Math.max(this.#renewedAt, started);
      return true;
    }
    this.#lose();
    return false;
  }

  async announce(node: NodeInfo): Promise<boolean> {
    const leaseId = this.#leaseId;
    if (!this.#node || leaseId === undefined) return false;
    if (node.id !== this.#node.id) throw new DomicileError('BAD_REQUEST', `announce: node id "${node.id}" is not the joined "${this.#node.id}"`, { node: node.id });
    if (!(await this.#backend.announce(node, leaseId))) return false;
    if (this.#leaseId === leaseId) this.#node = node;
    return true;
  }

  async leave(): Promise<void> {
    const node = this.#node;
    const leaseId = this.#leaseId;
    this.#stop();
    if (node && leaseId !== undefined) await this.#backend.release(node.id, leaseId);
  }

  canWrite(): boolean {
    return this.#leaseId !== undefined && performance.now() < this.#renewedAt + this.timing.ttlMs - this.timing.marginMs;
  }

  writeDeadline(): number | undefined {
    return this.#leaseId === undefined ? undefined : this.#renewedAt + this.timing.ttlMs - this.timing.marginMs;
  }

  onLeaseLost(listener: () => void): () => void {
    this.#lostListeners.add(listener);
    return () => this.#lostListeners.delete(listener);
  }

  /** Stops renewing; the lease expires by itself. */
  close(): void {
    this.#stop();
  }

  #stop(): void {
    this.#generation++;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#leaseId = undefined;
    this.#node = undefined;
    this.#renewedAt = -Infinity;
  }

  #lose(): void {
    this.#stop();
    for (const l of [...this.#lostListeners]) l();
  }

  /** Renews every period, start to start; a renewal slower than the period is followed at once by the next. */
  #schedule(generation: number, delayMs = this.timing.renewIntervalMs): void {
    this.#timer = setTimeout(() => {
      const started = performance.now();
      this.renew()
        .catch(() => undefined) // unreachable store: canWrite() falls by itself at the deadline
        .finally(() => {
          if (generation !== this.#generation) return;
          this.#schedule(generation, Math.max(0, this.timing.renewIntervalMs - (performance.now() - started)));
        });
    }, delayMs);
    this.#timer.unref();
  }
}

/** Polling watcher behind {@link Membership.watchNodes}. */
export function watchByPolling(
  liveNodes: () => Promise<NodeInfo[]>, listener: (event: NodeEvent) => void, intervalMs: number,
): () => void {
  let known: Map<string, NodeInfo> | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const poll = async (): Promise<void> => {
    try {
      const now = new Map((await liveNodes()).map((n) => [n.id, n]));
      if (stopped) return;
      if (known) {
        for (const [id, n] of now) if (!known.has(id)) listener({ type: 'joined', node: n });
        for (const [id, n] of known) if (!now.has(id)) listener({ type: 'left', node: n });
      }
      known = now;
    } catch {
      // Store unreachable: no news is reported as no change; the next poll compares again.
    } finally {
      if (!stopped) {
        timer = setTimeout(() => void poll(), intervalMs);
        timer.unref();
      }
    }
  };
  void poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
