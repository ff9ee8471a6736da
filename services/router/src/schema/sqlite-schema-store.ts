import type Database from 'better-sqlite3';
import { openControlFile } from '../control-file.ts';
import { migrationChecksum } from '@domicile/shard';
import { checkMigrationList, planAppend, type MigrationInput, type StoredMigration } from './migration-list.ts';
import type { PutResult, SchemaStore } from './schema-store.ts';

interface Row {
  name: string;
  sql: string;
  checksum: string;
  stored_at: string;
}

/**
 * The embedded SchemaStore: one SQLite file (`<dataDir>/schema.db`, next to
 * directory.db). Triggers refuse UPDATE and DELETE, so the list stays
 * append-only even against a bug here; the schema version is part of the
 * table name. Runs on the event loop like the embedded directory: the list is
 * small and a put is one short transaction.
 */
export class SqliteSchemaStore implements SchemaStore {
  readonly #db: InstanceType<typeof Database>;
  readonly #all;
  readonly #insert;
  readonly #put: (incoming: readonly MigrationInput[]) => PutResult;

  constructor(file: string) {
    this.#db = openControlFile(file);
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS schema_migrations_v1 (
        seq INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, sql TEXT NOT NULL, checksum TEXT NOT NULL, stored_at TEXT NOT NULL) STRICT;
      CREATE TRIGGER IF NOT EXISTS schema_migrations_v1_no_update BEFORE UPDATE ON schema_migrations_v1 BEGIN SELECT RAISE(ABORT, 'the migration list is append-only'); END;
      CREATE TRIGGER IF NOT EXISTS schema_migrations_v1_no_delete BEFORE DELETE ON schema_migrations_v1 BEGIN SELECT RAISE(ABORT, 'the migration list is append-only'); END;`);
    this.#all = this.#db.prepare<[], Row>('SELECT name, sql, checksum, stored_at FROM schema_migrations_v1 ORDER BY seq');
    this.#insert = this.#db.prepare('INSERT INTO schema_migrations_v1 (name, sql, checksum, stored_at) VALUES (?, ?, ?, ?)');
    // IMMEDIATE: the read of the stored list and the append are one atomic step.
    this.#put = this.#db.transaction((incoming: readonly MigrationInput[]) => {
      const added = planAppend(this.#read(), incoming);
      const storedAt = new Date().toISOString();
      for (const m of added) this.#insert.run(m.name, m.sql, migrationChecksum(m.sql), storedAt);
      return { migrations: this.#read(), added: added.map((m) => m.name) };
    }).immediate as (incoming: readonly MigrationInput[]) => PutResult;
  }

  async list(): Promise<StoredMigration[]> {
    return this.#read();
  }

  async put(migrations: readonly MigrationInput[]): Promise<PutResult> {
    checkMigrationList(migrations);
    return this.#put(migrations);
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }

  #read(): StoredMigration[] {
    return this.#all.all().map((r) => ({ name: r.name, sql: r.sql, checksum: r.checksum, storedAt: r.stored_at }));
  }
}
