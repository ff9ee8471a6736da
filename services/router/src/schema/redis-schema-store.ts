import { RedisAppendList, type RedisConnectionOptions } from '@domicile/directory';
import { DomicileError } from '@domicile/errors';
import { migrationChecksum } from '@domicile/shard';
import { checkMigrationList, planAppend, type MigrationInput, type StoredMigration } from './migration-list.ts';
import type { PutResult, SchemaStore } from './schema-store.ts';

/** Attempts of a put that keeps losing the race to other writers. */
const MAX_ATTEMPTS = 5;

/**
 * The cluster's SchemaStore: the migration list as an append-only Redis list (one JSON entry per
 * migration) that every node shares. A put reads the list, plans the append (`planAppend`: the
 * same rules as the embedded store) and appends only if no one appended meanwhile; otherwise it
 * reads again.
 */
export class RedisSchemaStore implements SchemaStore {
  readonly #list: RedisAppendList;

  constructor(opts: RedisConnectionOptions) {
    this.#list = new RedisAppendList(opts, 'schema');
  }

  async list(): Promise<StoredMigration[]> {
    return (await this.#list.read()).map((s) => JSON.parse(s) as StoredMigration);
  }

  async put(migrations: readonly MigrationInput[]): Promise<PutResult> {
    checkMigrationList(migrations);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const stored = await this.list();
      const added = planAppend(stored, migrations);
      const storedAt = new Date().toISOString();
      const entries: StoredMigration[] = added.map((m) => ({ name: m.name, sql: m.sql, checksum: migrationChecksum(m.sql), storedAt }));
      if (await this.#list.appendIfLength(stored.length, entries.map((e) => JSON.stringify(e)))) {
        return { migrations: [...stored, ...entries], added: added.map((m) => m.name) };
      }
    }
    throw new DomicileError('DIRECTORY_UNAVAILABLE', 'the migration list kept changing while it was stored; retry', { op: 'schema.put' });
  }

  async close(): Promise<void> {
    await this.#list.close();
  }
}
