import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { startRedisServer, type RedisServer } from '@domicile/testkit';
import { describeMembershipContract } from '../membership.contract.ts';
import { RedisDirectory } from './redis-directory.ts';
import { RedisMembership } from './redis-membership.ts';

const servers: RedisServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

// A server per test: breakStore() pauses it (SIGSTOP), which no other test may see.
describeMembershipContract('redis', async () => {
  const server = await startRedisServer();
  servers.push(server);
  const keyPrefix = 'm:';
  // Calls give up after 200 ms, so renewals against a paused server fail well inside the window.
  const directory = new RedisDirectory({ url: server.url, keyPrefix, timeoutMs: 200 });
  const raw = new Redis(server.url, { commandTimeout: 1000 });
  return {
    directory,
    make: (opts) => new RedisMembership({ ...opts, directory }),
    async leaseExpiresAt(nodeId) {
      const t0 = performance.now();
      const ms = await raw.pttl(`${keyPrefix}{nodes}:lease:${nodeId}`);
      return ms < 0 ? undefined : t0 + ms;
    },
    async breakStore() {
      server.pause();
    },
    async healStore() {
      server.resume();
    },
    async cleanup() {
      raw.disconnect();
      await directory.close();
      await server.stop();
    },
  };
});
