export * from './directory.ts';
export { EmbeddedDirectory } from './embedded/embedded-directory.ts';
export { RedisDirectory, type RedisDirectoryOptions, type EpochChange, type EpochSubscriber } from './redis/redis-directory.ts';
export { DEFAULT_KEY_PREFIX, DEFAULT_REDIS_TIMEOUT_MS, type RedisConnectionOptions } from './redis/redis-connection.ts';
export * from './membership.ts';
export { MemoryLeaseStore, MemoryMembership, type MemoryMembershipOptions } from './memory/memory-membership.ts';
export { RedisMembership, type RedisMembershipOptions } from './redis/redis-membership.ts';
export { RedisAppendList } from './redis/redis-append-list.ts';
