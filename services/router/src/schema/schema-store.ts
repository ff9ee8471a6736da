import type { MigrationInput, StoredMigration } from './migration-list.ts';

export type { MigrationInput, StoredMigration } from './migration-list.ts';

/** Outcome of `SchemaStore.put`. */
export interface PutResult {
  /** The whole stored list after the put, in order. */
  migrations: StoredMigration[];
  /** Names the put appended (empty when the list was already stored). */
  added: string[];
}

/**
 * Where the cluster's ordered migration list lives (DESIGN §5). Embedded:
 * `sqlite-schema-store.ts` (a SQLite file in the data dir); a Redis
 * implementation follows with the cluster. Every implementation passes
 * `schema-store.contract.ts`.
 */
export interface SchemaStore {
  /** The stored list in order; empty when nothing was stored yet. */
  list(): Promise<StoredMigration[]>;
  /**
   * Store `migrations`, the whole list as the caller knows it, atomically:
   * BAD_REQUEST when the list breaks the naming or order rules
   * (`checkMigrationList`), SCHEMA_CONFLICT when it does not repeat the stored
   * list as its prefix (`planAppend`); otherwise the new tail is appended.
   * Storing the same list again changes nothing.
   */
  put(migrations: readonly MigrationInput[]): Promise<PutResult>;
  /** Releases files and connections. */
  close(): Promise<void>;
}
