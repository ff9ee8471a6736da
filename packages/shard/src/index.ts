/** @domicile/shard: per-tenant SQLite shards on worker threads (DESIGN §7). */
export { ShardPool, DEFAULT_MAX_QUEUE, type ShardPoolOptions, type ShardPoolLogger } from './shard-pool.ts';
export type { MaintenanceOp, MaintenanceResult } from './protocol.ts';
export { walChangedSince, type WalMark } from './wal-mark.ts';
export type { DescribeValue } from './describe.ts';
export { shardPath, assertTenantId, TENANT_ID_PATTERN, SHARD_FILE_SUFFIXES } from './shard-path.ts';
export { toBindParams, toBindValue, toWireValue, type BindParams, type BindValue } from './values.ts';
export type * from './types.ts';
export { migrationChecksum, MIGRATIONS_TABLE, type ShardMigration, type MigrateResult, type MigrationFailure } from './migrate.ts';
export { DEFAULT_SESSION_IDLE_TIMEOUT_MS, type SessionInfo } from './session-manager.ts';
export { assertIdempotencyKey, IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER, IDEMPOTENCY_KEY_PATTERN, DEFAULT_IDEMPOTENCY_TTL_MS } from './idempotency-key.ts';
export { resolveTsxEsmApi } from './spawn-worker.ts';
export { cpuSeconds, osThreadId, threadCpuSeconds } from './thread-cpu.ts';
export type { LiveFileLender } from './live-file.ts';
