import { expect, it } from 'vitest';
import { describeMembershipContract } from '../membership.contract.ts';
import { resolveLeaseTiming } from '../membership.ts';
import { tempEmbeddedDirectory } from './test-directory.ts';
import { MemoryLeaseStore, MemoryMembership } from './memory-membership.ts';

describeMembershipContract('in-memory', async () => {
  const store = new MemoryLeaseStore();
  const { directory, cleanup } = tempEmbeddedDirectory();
  return {
    directory,
    make: (opts) => new MemoryMembership({ ...opts, store, directory }),
    async leaseExpiresAt(nodeId) {
      const was = store.unavailable;
      store.unavailable = false;
      try {
        return store.lease(nodeId)?.expiresAt;
      } finally {
        store.unavailable = was;
      }
    },
    async breakStore() {
      store.unavailable = true;
    },
    async healStore() {
      store.unavailable = false;
    },
    cleanup,
  };
});

it('lease timing: defaults follow the TTL, and a margin or period that leaves no write window is refused', () => {
  expect(resolveLeaseTiming()).toEqual({ ttlMs: 5000, marginMs: 1000, renewIntervalMs: 1667 });
  expect(resolveLeaseTiming({ ttlMs: 1000 })).toEqual({ ttlMs: 1000, marginMs: 500, renewIntervalMs: 333 });
  expect(resolveLeaseTiming({ ttlMs: 60_000 })).toMatchObject({ marginMs: 12_000 });
  // Below 1 s the 500 ms floor would leave nothing: half the TTL instead.
  expect(resolveLeaseTiming({ ttlMs: 600 })).toMatchObject({ marginMs: 300, renewIntervalMs: 200 });
  expect(() => resolveLeaseTiming({ ttlMs: 1000, marginMs: 1000 })).toThrow(/marginMs/);
  expect(() => resolveLeaseTiming({ ttlMs: 1000, marginMs: 400, renewIntervalMs: 600 })).toThrow(/renewIntervalMs/);
  expect(() => resolveLeaseTiming({ ttlMs: 10 })).toThrow(/ttlMs/);
});
