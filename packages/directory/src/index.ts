export * from './directory.ts';
export { EmbeddedDirectory } from './embedded/embedded-directory.ts';
export { RedisDirectory, type RedisDirectoryOptions, type EpochChange, type EpochSubscriber } from './redis/redis-directory.ts';
export { DEFAULT_KEY_PREFIX, DEFAULT_REDIS_TIMEOUT_MS, type RedisConnectionOptions } from './redis/redis-connection.ts';
