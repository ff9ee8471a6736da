/**
 * Request and response shapes of Domicile's JSON API (DESIGN §5). The server
 * may add fields; every response type therefore tolerates more than it names.
 */
import type { Params, WireValue } from './values.ts';

/** Durability of a tenant's writes: acknowledged after the local commit, or after the bucket has the segment. */
export type Durability = 'async' | 'sync';

/** Scope of a tenant token. */
export type TokenScope = 'read' | 'write';

/** `POST /v1/tenants` body. */
export interface CreateTenantRequest {
  id: string;
  residency: string;
  /** Absent: the residency's default region (or the tenant's pin). */
  region?: string;
  /** Absent: the server's `DOMICILE_DURABILITY`. */
  durability?: Durability;
}

/** Where a tenant lives, as the directory records it. */
export interface Tenant {
  id: string;
  residency: string;
  region: string;
  node: string;
  epoch: number;
  /** e.g. `active`, `moving`. */
  state: string;
  durability: Durability;
  /** RFC 3339. */
  createdAt: string;
  [field: string]: unknown;
}

/** Replication state of one tenant (`GET /v1/tenants/:id`). */
export interface ReplicationState {
  mode: Durability;
  lagMs: number;
  lastTxid: number;
  replicatedTxid: number;
  [field: string]: unknown;
}

/** `GET /v1/tenants/:id`: placement plus replication state. */
export interface TenantDetail extends Tenant {
  replication: ReplicationState;
}

/** Filters and paging of `GET /v1/tenants`. */
export interface ListTenantsOptions {
  region?: string;
  residency?: string;
  /** Page size (the server may cap it). */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
}

/** One page of `GET /v1/tenants`. */
export interface TenantPage {
  tenants: Tenant[];
  /** Absent or null on the last page. */
  nextCursor?: string | null;
}

/** `DELETE /v1/tenants/:id`: what was deleted and verified gone. */
export interface EraseResult {
  erased: { files: number; bucketObjects: number; [field: string]: unknown };
  [field: string]: unknown;
}

/** `POST /v1/tenants/:id/tokens` body (minus the tenant). */
export interface CreateTokenRequest {
  scope: TokenScope;
  /** Absent: the server's default lifetime. */
  ttlSeconds?: number;
}

/** A new tenant token. */
export interface TokenResult {
  token: string;
  /** RFC 3339. */
  expiresAt: string;
  [field: string]: unknown;
}

/** `POST /v1/tenants/:id/tokens/revoke`: every token issued before this answer stops working. */
export interface RevokeResult {
  [field: string]: unknown;
}

/** One statement of a batch. */
export interface Statement {
  sql: string;
  params?: Params;
}

/** Options of `query` and `batch`. */
export interface WriteOptions {
  /** Sent as `Idempotency-Key`: a retry with the same key is answered from the recorded outcome. */
  idempotencyKey?: string;
}

/** Result of one statement. Rows keep the wire encoding; decode with `decodeValue` / `decodeRows`. */
export interface QueryResult {
  columns: string[];
  /** Declared column types (empty string when there is none). */
  columnTypes: (string | null)[];
  rows: WireValue[][];
  rowsAffected: number;
  lastInsertRowid: WireValue;
  [field: string]: unknown;
}

/** `POST /v1/tenants/:id/batch`: one result per statement, in order. */
export interface BatchResult {
  results: QueryResult[];
  [field: string]: unknown;
}

/** Filters and paging of `GET /v1/audit`. */
export interface AuditOptions {
  tenant?: string;
  limit?: number;
  cursor?: string;
}

/** One entry of the append-only audit log. */
export interface AuditEvent {
  [field: string]: unknown;
}

/** One page of `GET /v1/audit`. */
export interface AuditPage {
  events: AuditEvent[];
  nextCursor?: string | null;
  [field: string]: unknown;
}

/** `GET /v1/audit/residency`: stored bytes of every tenant by region, and every violation. */
export interface ResidencyAudit {
  tenants: Array<{ [field: string]: unknown }>;
  violations: Array<{ [field: string]: unknown }>;
  /** What could not be read (a cluster node that did not answer, a region without a known bucket); empty when complete. */
  incomplete?: string[];
  [field: string]: unknown;
}

/** `POST /v1/tenants/:id/move` body (minus the tenant). */
export interface MoveRequest {
  /** Target region. */
  to: string;
  /** Target node; absent: a live node of the region (at random). */
  node?: string;
}

/** Phases of a move, in order; `aborted` may follow any phase before `done`. */
export type MovePhase = 'pending' | 'copying' | 'catching-up' | 'fenced' | 'switching' | 'purging' | 'done' | 'aborted';

/** `GET /v1/moves/:moveId`. */
export interface MoveStatus {
  moveId: string;
  tenant: string;
  from: string;
  to: string;
  node: string;
  phase: MovePhase;
  bytesCopied: number;
  bytesTotal: number;
  /** Fence → first write accepted on the target; set once measured. */
  writePauseMs: number | null;
  /** Why the move aborted. */
  error?: { code: string; message: string; [field: string]: unknown };
  [field: string]: unknown;
}

/** `POST /v1/tenants/:id/restore` body (minus the tenant): `at` or `txid`. */
export interface RestoreRequest {
  /** RFC 3339 time (a Date is sent as its ISO form). */
  at?: string | Date;
  txid?: number;
  /** Fork into this new tenant (same region) instead of restoring in place. */
  as?: string;
}

/** What a restore produced. */
export interface RestoreResult {
  /** The tenant holding the restored state (the fork's id with `as`). */
  tenant: string;
  /** The restored point: the last transaction at or before the target. */
  txid: number;
  /** RFC 3339 commit time of `txid`. */
  time: string;
  /** Generation (and its epoch) it was restored from. */
  generation?: string;
  epoch?: number;
  /** Size of the restored database. */
  bytes?: number;
  /** In place: the txid the restored state carries from now on (txids never reset). */
  newTxid?: number;
  fork?: boolean;
  /** In place: how long the tenant's requests were held for the swap (ms). */
  pauseMs?: number;
  [field: string]: unknown;
}

/** One generation of a tenant's backups: one unbroken history (snapshot + segments) of one epoch. */
export interface BackupGeneration {
  generation: string;
  epoch: number;
  /** Region whose bucket holds it (the tenant's current region). */
  region: string;
  /** Snapshots, oldest first; `time` is RFC 3339. */
  snapshots: Array<{ txid: number; time: string | null; bytes: number; [field: string]: unknown }>;
  segmentCount: number;
  firstTxid: number;
  lastTxid: number;
  /** RFC 3339, or null when unknown. */
  firstTime: string | null;
  lastTime: string | null;
  [field: string]: unknown;
}

/** `GET /v1/tenants/:id/backups`. */
export interface BackupsResult {
  generations: BackupGeneration[];
  [field: string]: unknown;
}

/** One schema migration (`PUT /v1/schema`). */
export interface Migration {
  name: string;
  sql: string;
}

/** `POST /v1/schema/apply` body. */
export interface ApplySchemaRequest {
  /** Absent: every tenant. */
  tenants?: string[];
  /** Tenants migrated at once, 1..64 (server default 4). */
  concurrency?: number;
}

/** A migration as the cluster stores it (`GET /v1/schema`). */
export interface StoredMigration extends Migration {
  /** sha256 (hex) of `sql` as UTF-8. */
  checksum: string;
  storedAt: string;
}

/** `GET /v1/schema`. */
export interface SchemaList {
  migrations: StoredMigration[];
}

/** `PUT /v1/schema`. */
export interface PutSchemaResult {
  /** Names this request appended; empty when the list was stored already. */
  added: string[];
  migrations: { name: string; checksum: string; storedAt: string }[];
}

/** One tenant that did not get the whole list. */
export interface SchemaJobFailure {
  tenant: string;
  /** null: the tenant could not be reached at all. */
  migration: string | null;
  code: string;
  message: string;
  [detail: string]: unknown;
}

/** `GET /v1/schema/jobs/:jobId`. Counts are tenants unless named otherwise. */
export interface SchemaJob {
  jobId: string;
  state: 'running' | 'done';
  migrations: number;
  total: number;
  done: number;
  applied: number;
  upToDate: number;
  failed: number;
  skipped: number;
  migrationsApplied: number;
  failures: SchemaJobFailure[];
  failuresTruncated: boolean;
  concurrency: number;
  startedAt: string;
  finishedAt?: string;
  stopped?: boolean;
  [field: string]: unknown;
}

/** Any JSON object the server answers with and this client does not type further. */
export interface JsonObject {
  [field: string]: unknown;
}
