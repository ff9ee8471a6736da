/** Lifecycle of a tenant in the directory. */
export type TenantState = 'creating' | 'active' | 'moving' | 'erasing';

/** Durability of a tenant's writes (DESIGN §8). */
export type TenantDurability = 'async' | 'sync';

/** The directory's record of one tenant: where it lives and who may write it (DESIGN §1). */
export interface TenantRecord {
  id: string;
  /** Random id fixed at creation; a re-created id is a different tenant. */
  incarnation: string;
  residency: string;
  region: string;
  node: string;
  /** Fencing epoch; starts at 1 and grows every time the primary changes hands. */
  epoch: number;
  state: TenantState;
  durability: TenantDurability;
  /** RFC 3339. */
  createdAt: string;
  /** Tokens issued before this instant (ms since epoch) stop working; 0 = never revoked. */
  tokensValidAfter: number;
}

/** Filters and paging of `list`. */
export interface ListQuery {
  region?: string;
  residency?: string;
  node?: string;
  /** 1..1000. */
  limit: number;
  /** Opaque: the `nextCursor` of the previous page. */
  cursor?: string;
}

/** One page of tenants, in id order. */
export interface TenantPage {
  tenants: TenantRecord[];
  /** Absent on the last page. */
  nextCursor?: string;
}

/** The fields a compare-and-set may change. */
export type TenantPatch = Partial<Pick<TenantRecord, 'region' | 'node' | 'epoch' | 'state' | 'tokensValidAfter'>>;

/**
 * The authority on where each tenant lives (DESIGN §1, §10). Implementations: embedded (a SQLite
 * file) and Redis (cluster). All of them pass `directory.contract.ts`.
 */
export interface Directory {
  /** Adds a tenant. A record with the same id exists → DomicileError TENANT_EXISTS. */
  create(record: TenantRecord): Promise<TenantRecord>;
  /** The tenant's record, or undefined when there is none. */
  get(id: string): Promise<TenantRecord | undefined>;
  /** Tenants in id order, filtered; `cursor` resumes after the previous page. */
  list(query: ListQuery): Promise<TenantPage>;
  /**
   * Applies `patch` only if the stored record still has `expect.incarnation` and `expect.epoch`.
   * Returns the new record; a missing tenant → TENANT_NOT_FOUND; a mismatch → undefined (the caller lost the race).
   */
  compareAndSet(id: string, expect: { incarnation: string; epoch: number }, patch: TenantPatch): Promise<TenantRecord | undefined>;
  /** Removes the record if it still has `incarnation`. Returns whether it removed one. */
  remove(id: string, incarnation: string): Promise<boolean>;
  /** Number of tenants per region (for status and cluster views). */
  countByRegion(): Promise<Map<string, number>>;
  /** Releases connections and files. */
  close(): Promise<void>;
}

/** Encodes a list cursor (the last id of a page). */
export function encodeCursor(lastId: string): string {
  return Buffer.from(lastId, 'utf8').toString('base64url');
}

/** Decodes a list cursor; undefined when it is not one of ours. */
export function decodeCursor(cursor: string): string | undefined {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  return /^[a-z0-9][a-z0-9_-]{0,62}$/.test(id) ? id : undefined;
}
