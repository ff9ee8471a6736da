import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { migrationChecksum, type ShardMigration } from './migrate.ts';
import { ShardPool } from './shard-pool.ts';
import { shardPath } from './shard-path.ts';
import type { ShardRef } from './types.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'domicile-migrate-'));
  const pool = new ShardPool({ workers: 2, maxOpenShards: 16, statementTimeoutMs: 300, maxResultBytes: 1 << 20, maxDbBytes: 1 << 26 });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => pool.close());
  await pool.start();
  const ref = (tenant: string): ShardRef => ({ tenant, incarnation: `inc-${tenant}`, path: shardPath(dir, tenant), epoch: 1 });
  return { pool, dir, ref };
}

const m = (name: string, sql: string): ShardMigration => ({ name, sql, checksum: migrationChecksum(sql) });

const M1 = m('0001_notes', 'CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\nCREATE INDEX notes_body ON notes (body);');
const M2 = m('0002_tags', "-- several statements, comments and a seed row\nCREATE TABLE tags (name TEXT PRIMARY KEY);\nINSERT INTO tags VALUES ('a; b');\nALTER TABLE notes ADD COLUMN tag TEXT;");

function read(path: string, sql: string): unknown[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare(sql).all();
  } finally {
    db.close();
  }
}

const txid = (path: string) => (read(path, 'SELECT txid FROM _domicile_meta')[0] as { txid: number }).txid;

describe('ShardPool.migrate', () => {
  it('applies each migration once, in its own transaction with its own txid, and records it', async () => {
    const { pool, ref } = await setup();
    const a = ref('acme');
    await pool.create(a);
    await pool.query(a, { sql: 'CREATE TABLE pre (x)' });
    const r = await pool.migrate(a, [M1, M2]);
    expect(r).toEqual({ applied: ['0001_notes', '0002_tags'], alreadyApplied: 0 });
    expect(read(a.path, "SELECT name FROM sqlite_schema WHERE name IN ('notes', 'notes_body', 'tags') ORDER BY name")).toHaveLength(3);
    expect(read(a.path, 'SELECT name, checksum, txid FROM _domicile_migrations ORDER BY name')).toEqual([
      { name: '0001_notes', checksum: M1.checksum, txid: 2 },
      { name: '0002_tags', checksum: M2.checksum, txid: 3 },
    ]);
    expect(txid(a.path)).toBe(3);
    // The tenant sees the migrated schema and can read (not write) the record.
    expect((await pool.query(a, { sql: 'SELECT name FROM tags' })).rows).toEqual([['a; b']]);
    expect((await pool.query(a, { sql: 'SELECT count(*) FROM _domicile_migrations' })).rows).toEqual([[2]]);
    await expect(pool.query(a, { sql: "DELETE FROM _domicile_migrations WHERE name = '0002_tags'" })).rejects.toMatchObject({ code: 'STATEMENT_NOT_ALLOWED' });
  });

  it('is a no-op on a re-run: nothing applied, nothing written, txid unchanged', async () => {
    const { pool, ref } = await setup();
    const a = ref('acme');
    await pool.create(a);
    await pool.migrate(a, [M1]);
    const before = txid(a.path);
    expect(await pool.migrate(a, [M1])).toEqual({ applied: [], alreadyApplied: 1 });
    expect(txid(a.path)).toBe(before);
    // An appended migration: only it runs.
    expect(await pool.migrate(a, [M1, M2])).toEqual({ applied: ['0002_tags'], alreadyApplied: 1 });
    expect(txid(a.path)).toBe(before + 1);
  });

  it('rolls a failing migration back whole, keeps the earlier ones and stops the tenant there', async () => {
    const { pool, ref } = await setup();
    const a = ref('acme');
    await pool.create(a);
    const bad = m('0002_bad', 'CREATE TABLE half (x);\nINSERT INTO half VALUES (1);\nINSERT INTO no_such_table VALUES (1);');
    const later = m('0003_later', 'CREATE TABLE later (x);');
    const r = await pool.migrate(a, [M1, bad, later]);
    expect(r.applied).toEqual(['0001_notes']);
    expect(r.failure).toMatchObject({ migration: '0002_bad', code: 'SQL_ERROR', details: { sqliteCode: 'SQLITE_ERROR' } });
    expect(r.failure!.message).toContain('no_such_table');
    expect(read(a.path, "SELECT name FROM sqlite_schema WHERE name IN ('half', 'later')")).toEqual([]);
    expect(read(a.path, 'SELECT name FROM _domicile_migrations')).toEqual([{ name: '0001_notes' }]);
    expect(txid(a.path)).toBe(1);
    // The handle is usable and outside any transaction: a fixed list goes on from there.
    const fixed = m('0002_bad', 'CREATE TABLE half (x);');
    expect(await pool.migrate(a, [M1, fixed, later])).toEqual({ applied: ['0002_bad', '0003_later'], alreadyApplied: 1 });
  });

  it.each([
    ['ATTACH of a file', "CREATE TABLE ok (x);\nATTACH '/tmp/domicile-migrate-evil.db' AS evil;", 'ATTACH'],
    ['a write to a reserved table', "DELETE FROM _domicile_meta;", '_domicile_'],
    ['creating a reserved table', 'CREATE TABLE _domicile_mine (x);', '_domicile_'],
    ['transaction control', 'COMMIT;\nCREATE TABLE after_commit (x);', 'transaction control'],
    ['a PRAGMA outside the allowlist', 'PRAGMA journal_mode = DELETE;', 'journal_mode'],
  ])('keeps the statement guard on inside a migration: %s is refused and nothing of it stays', async (_what, sql, reason) => {
    const { pool, ref } = await setup();
    const a = ref('acme');
    await pool.create(a);
    const r = await pool.migrate(a, [m('0001_evil', sql)]);
    expect(r.applied).toEqual([]);
    expect(r.failure).toMatchObject({ migration: '0001_evil', code: 'STATEMENT_NOT_ALLOWED' });
    expect(r.failure!.message).toContain(reason);
    expect(read(a.path, "SELECT name FROM sqlite_schema WHERE name IN ('ok', 'after_commit', '_domicile_migrations', '_domicile_mine')")).toEqual([]);
    expect(read(a.path, 'SELECT count(*) AS n FROM _domicile_meta')).toEqual([{ n: 1 }]);
    expect(read(a.path, 'PRAGMA journal_mode')).toEqual([{ journal_mode: 'wal' }]);
  });

  it('interrupts a runaway migration at the statement timeout and rolls it back', async () => {
    const { pool, ref } = await setup();
    const a = ref('acme');
    await pool.create(a);
    const runaway = m('0001_runaway', 'CREATE TABLE t (x);\nWITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) INSERT INTO t SELECT x FROM c;');
    const r = await pool.migrate(a, [runaway]);
    expect(r.failure).toMatchObject({ migration: '0001_runaway', code: 'QUERY_TIMEOUT' });
    expect(read(a.path, "SELECT name FROM sqlite_schema WHERE name = 't'")).toEqual([]);
    expect((await pool.query(a, { sql: 'SELECT 1' })).rows).toEqual([[1]]);
  });

  it('reports SCHEMA_CONFLICT when an applied name comes back with different SQL, and applies nothing after it', async () => {
    const { pool, ref } = await setup();
    const a = ref('acme');
    await pool.create(a);
    await pool.migrate(a, [M1]);
    const changed = m('0001_notes', 'CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, extra TEXT);');
    const r = await pool.migrate(a, [changed, M2]);
    expect(r).toEqual({
      applied: [], alreadyApplied: 0,
      failure: {
        migration: '0001_notes', code: 'SCHEMA_CONFLICT', message: expect.stringContaining('different SQL'),
        details: { reason: 'checksum', appliedChecksum: M1.checksum, checksum: changed.checksum },
      },
    });
    expect(read(a.path, "SELECT name FROM sqlite_schema WHERE name = 'tags'")).toEqual([]);
  });

  it('rejects with TENANT_NOT_FOUND for a shard that does not exist', async () => {
    const { pool, ref } = await setup();
    await expect(pool.migrate(ref('ghost'), [M1])).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' });
  });
});
