import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Directory, TenantRecord } from './directory.ts';
import type { LeaseOptions, Membership, NodeEvent, NodeInfo } from './membership.ts';

/** One cluster's worth of memberships on one store, with fault injection for the tests. */
export interface MembershipHarness {
  /** A new membership (one node's handle) on the shared store. */
  make(opts: LeaseOptions): Membership;
  /** The directory that `claimTenant` changes. */
  directory: Directory;
  /** performance.now() at which the store will drop `nodeId`'s lease, or undefined when there is none. */
  leaseExpiresAt(nodeId: string): Promise<number | undefined>;
  /** Makes the store unreachable for every membership of the harness. */
  breakStore(): Promise<void>;
  /** Undoes {@link MembershipHarness.breakStore}. */
  healStore(): Promise<void>;
  cleanup(): Promise<void>;
}

/** Builds a fresh, empty harness for one test. */
export type MembershipFactory = () => Promise<MembershipHarness>;

/** Short leases so that expiry tests take a fraction of a second. */
const TIMING = Object.freeze({ ttlMs: 600, marginMs: 200, renewIntervalMs: 100 });

const node = (id: string, region = 'eu-west'): NodeInfo => ({
  id, region, url: `http://${id}.test:8080`, policyHash: 'sha256:abc', protocolVersion: '1.0',
});

const tenant = (id: string, owner: string): TenantRecord => ({
  id, incarnation: randomUUID(), residency: 'eu', region: 'eu-west', node: owner, epoch: 1,
  state: 'active', durability: 'sync', createdAt: new Date().toISOString(), tokensValidAfter: 0,
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The one contract every Membership implementation must pass (DESIGN §10, invariant 1). */
export function describeMembershipContract(name: string, factory: MembershipFactory): void {
  describe(`Membership contract: ${name}`, () => {
    let h: MembershipHarness;
    const made: Membership[] = [];
    const make = (opts: LeaseOptions = TIMING): Membership => {
      const m = h.make(opts);
      made.push(m);
      return m;
    };
    beforeEach(async () => {
      h = await factory();
    });
    afterEach(async () => {
      await h.healStore();
      await Promise.all(made.splice(0).map((m) => m.close()));
      await h.cleanup();
    });

    it('lists a joined node with what it announced, by region, and drops it at once on leave', async () => {
      const a = make();
      const b = make();
      await a.join(node('a'));
      await b.join(node('b', 'us-east'));
      expect(await a.liveNodes()).toEqual([node('a'), node('b', 'us-east')]);
      expect(await b.liveNodes('us-east')).toEqual([node('b', 'us-east')]);
      expect(a.canWrite()).toBe(true);
      await b.leave();
      expect(b.canWrite()).toBe(false);
      expect(await a.liveNodes()).toEqual([node('a')]);
      expect(await a.nodes()).toEqual([{ ...node('a'), live: true }]);
    });

    it('announces new node info while the lease holds (a policy reload), and nothing once it is gone', async () => {
      const a = make();
      const b = make();
      await a.join(node('a'));
      await b.join(node('b'));
      const reloaded = { ...node('a'), policyHash: 'h2' };
      expect(await a.announce(reloaded)).toBe(true);
      expect(await b.liveNodes()).toEqual([reloaded, node('b')]);
      expect(a.canWrite()).toBe(true);
      await expect(a.announce({ ...node('b'), policyHash: 'h3' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
      await a.leave();
      expect(await a.announce({ ...node('a'), policyHash: 'h4' })).toBe(false);
      expect(await b.nodes()).toEqual([{ ...node('b'), live: true }]);
    });

    it('keeps a node live and writable across several TTLs by renewing in the background', async () => {
      const a = make();
      await a.join(node('a'));
      const deadline = performance.now() + TIMING.ttlMs * 2.5;
      while (performance.now() < deadline) {
        expect(a.canWrite()).toBe(true);
        await sleep(50);
      }
      expect((await a.liveNodes()).map((n) => n.id)).toEqual(['a']);
    });

    it('lets an unrenewed lease expire, and watchNodes reports the join and the departure', async () => {
      const watcher = make();
      const a = make();
      const events: NodeEvent[] = [];
      const stop = watcher.watchNodes((e) => events.push(e), 50);
      await sleep(120); // first poll: the baseline
      await a.join(node('a'));
      await expect.poll(() => events.map((e) => `${e.type}:${e.node.id}`), { timeout: 2000, interval: 20 }).toEqual(['joined:a']);
      await a.close(); // stops renewing without leaving
      await expect.poll(() => watcher.liveNodes().then((l) => l.map((n) => n.id)), { timeout: 2000, interval: 20 }).toEqual([]);
      await expect.poll(() => events.map((e) => `${e.type}:${e.node.id}`), { timeout: 2000, interval: 20 }).toEqual(['joined:a', 'left:a']);
      stop();
      expect(await watcher.nodes()).toEqual([{ ...node('a'), live: false }]);
    });

    it('outlives every write window by at least the margin: the lease expires no earlier than writeDeadline + margin', async () => {
      const a = make({ ...TIMING, autoRenew: false });
      await a.join(node('a'));
      for (let i = 0; i < 5; i++) {
        expect(await a.renew()).toBe(true);
        const deadline = a.writeDeadline()!;
        const expiresAt = (await h.leaseExpiresAt('a'))!;
        // Slack: the store's TTL is whole milliseconds, and a remote store's answer is read a
        // round trip after the request (expiresAt is measured from the request, so it is early).
        expect(expiresAt - deadline).toBeGreaterThanOrEqual(TIMING.marginMs - 10);
        await sleep(30);
      }
    });

    it('stops writing at its deadline when it cannot renew, with no I/O, and has lost the lease afterwards', async () => {
      const a = make();
      const lost: number[] = [];
      a.onLeaseLost(() => lost.push(performance.now()));
      await a.join(node('a'));
      await h.breakStore();
      let falseAt: number | undefined;
      while (falseAt === undefined) {
        if (!a.canWrite()) falseAt = performance.now();
        else await sleep(5);
      }
      const deadline = a.writeDeadline()!;
      expect(falseAt).toBeGreaterThanOrEqual(deadline);
      expect(falseAt - deadline).toBeLessThan(150);
      // Past the TTL the store dropped the lease: the next renewal finds it gone, and no renewal
      // sent while the store was unreachable brings it back.
      await sleep(TIMING.ttlMs);
      await h.healStore();
      await expect.poll(() => lost.length, { timeout: 3000, interval: 20 }).toBe(1);
      expect(a.canWrite()).toBe(false);
      expect(await a.renew()).toBe(false);
      expect(await h.leaseExpiresAt('a')).toBeUndefined();
    });

    it('waits out a live lease of the same node id on join, and the old holder can no longer renew', async () => {
      // The first process freezes: it holds the lease and stops renewing, without leaving.
      const first = make({ ...TIMING, autoRenew: false });
      const second = make();
      let lost = 0;
      first.onLeaseLost(() => lost++);
      await first.join(node('a'));
      const t0 = performance.now();
      await second.join(node('a'));
      expect(performance.now() - t0).toBeGreaterThanOrEqual(TIMING.ttlMs - 50);
      expect(second.canWrite()).toBe(true);
      expect(first.canWrite()).toBe(false);
      // It wakes up: its renewal must not extend the lease the second process now holds.
      expect(await first.renew()).toBe(false);
      expect(lost).toBe(1);
      expect(second.canWrite()).toBe(true);
      expect(await second.renew()).toBe(true);
    });

    it('refuses to join while another live process holds the node id past one TTL', async () => {
      const first = make();
      const second = make();
      await first.join(node('a'));
      await expect(second.join(node('a'))).rejects.toMatchObject({ code: 'NODE_UNAVAILABLE' });
      expect(first.canWrite()).toBe(true);
    });

    it('claims a tenant for a live node only once the owner lease is gone, at epoch + 1, exactly once', async () => {
      const a = make();
      const b = make();
      const c = make();
      await a.join(node('a'));
      await b.join(node('b'));
      await c.join(node('c'));
      const t = await h.directory.create(tenant('acme', 'a'));
      const expectOwner = { incarnation: t.incarnation, epoch: 1, node: 'a' };
      expect(await b.claimTenant('acme', expectOwner, 'b')).toEqual({ claimed: false, reason: 'owner-alive' });
      expect(await b.claimTenant('acme', { ...expectOwner, epoch: 7 }, 'b')).toEqual({ claimed: false, reason: 'changed' });
      await expect(b.claimTenant('ghost', expectOwner, 'b')).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' });
      await a.close(); // the owner dies: its lease runs out
      await expect.poll(() => b.liveNodes().then((l) => l.map((n) => n.id)), { timeout: 2000, interval: 20 }).toEqual(['b', 'c']);
      expect(await b.claimTenant('acme', expectOwner, 'nobody')).toEqual({ claimed: false, reason: 'not-live' });
      const results = await Promise.all([b.claimTenant('acme', expectOwner, 'b'), c.claimTenant('acme', expectOwner, 'c')]);
      const winners = results.filter((r) => r.claimed);
      expect(winners).toHaveLength(1);
      const won = winners[0]!;
      if (!won.claimed) throw new Error('unreachable');
      expect(won.record).toMatchObject({ id: 'acme', incarnation: t.incarnation, epoch: 2, region: 'eu-west' });
      expect(results.filter((r) => !r.claimed)).toEqual([{ claimed: false, reason: 'changed' }]);
      expect(await h.directory.get('acme')).toMatchObject({ epoch: 2, node: won.record.node });
      expect((await h.directory.list({ limit: 10, node: won.record.node })).tenants.map((x) => x.id)).toEqual(['acme']);
    });
  });
}
