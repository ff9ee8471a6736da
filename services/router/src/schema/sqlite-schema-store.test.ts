import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect, it } from 'vitest';
import { describeSchemaStoreContract } from './schema-store.contract.ts';
import { SqliteSchemaStore } from './sqlite-schema-store.ts';

describeSchemaStoreContract('sqlite', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'domicile-schema-'));
  const store = new SqliteSchemaStore(path.join(dir, 'schema.db'));
  return { store, cleanup: async () => { await store.close(); rmSync(dir, { recursive: true, force: true }); } };
});

it('sqlite schema store keeps its list across a reopen and refuses UPDATE/DELETE behind its back', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'domicile-schema-'));
  try {
    const file = path.join(dir, 'schema.db');
    const a = new SqliteSchemaStore(file);
    await a.put([{ name: '1', sql: 'CREATE TABLE t (x)' }]);
    await a.close();
    const raw = new Database(file);
    expect(() => raw.prepare("UPDATE schema_migrations_v1 SET sql = 'DROP TABLE t'").run()).toThrow(/append-only/);
    expect(() => raw.prepare('DELETE FROM schema_migrations_v1').run()).toThrow(/append-only/);
    raw.close();
    const b = new SqliteSchemaStore(file);
    expect((await b.list()).map((m) => [m.name, m.sql])).toEqual([['1', 'CREATE TABLE t (x)']]);
    await b.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
