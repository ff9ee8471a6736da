import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { poolWithOneTenant } from './test-pool.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('reserved names and renamed tenant tables', () => {
  it('a temp table renamed to _domicile_meta cannot capture the trusted txid bump (its trigger never runs trusted)', async () => {
    const { pool, a } = await poolWithOneTenant('domicile-reserved-', cleanups);
    await pool.query(a, { sql: 'CREATE TABLE side (x)' });
    await pool.query(a, { sql: 'CREATE TEMP TABLE foo (id INTEGER PRIMARY KEY, txid INT)' });
    await pool.query(a, { sql: 'INSERT INTO temp.foo VALUES (1, 0)' });
    await pool.query(a, { sql: "CREATE TEMP TRIGGER grab AFTER UPDATE ON foo BEGIN INSERT INTO main.side VALUES ('ran'); UPDATE main._domicile_meta SET epoch = 999; END" });
    // statement-guard.md "Known gap": the guard does not see the new name of a rename.
    await pool.query(a, { sql: 'ALTER TABLE temp.foo RENAME TO _domicile_meta' });
    const meta = () => {
      const db = new Database(a.path, { readonly: true });
      try { return db.prepare('SELECT txid, epoch FROM main._domicile_meta').get(); } finally { db.close(); }
    };
    const before = meta() as { txid: number };
    await pool.query(a, { sql: "INSERT INTO side VALUES ('w')" });
    expect(meta()).toEqual({ txid: before.txid + 1, epoch: 1 });
    expect((await pool.query(a, { sql: 'SELECT x FROM side' })).rows).toEqual([['w']]);
  });

  it('a tenant table renamed to _domicile_migrations (with a trigger) is refused as impostor and never receives trusted writes', async () => {
    const { pool, a } = await poolWithOneTenant('domicile-reserved-', cleanups);
    await pool.query(a, { sql: 'CREATE TABLE side (x)' });
    await pool.query(a, { sql: 'CREATE TABLE mig (name TEXT PRIMARY KEY, checksum TEXT, applied_at TEXT, txid INTEGER)' });
    await pool.query(a, { sql: "CREATE TRIGGER grab AFTER INSERT ON mig BEGIN INSERT INTO side VALUES ('ran'); END" });
    await pool.query(a, { sql: 'ALTER TABLE mig RENAME TO _domicile_migrations' });
    const r = await pool.migrate(a, [{ name: '0001', sql: 'CREATE TABLE t (x)', checksum: 'c' }]).catch((e: unknown) => e);
    const code = (r as { code?: string }).code ?? (r as { failure?: { code: string } }).failure?.code;
    expect(code).toBe('INTERNAL');
    expect((await pool.query(a, { sql: 'SELECT count(*) FROM side' })).rows).toEqual([[0]]);
    expect((await pool.query(a, { sql: "SELECT count(*) FROM sqlite_schema WHERE name = 't'" })).rows).toEqual([[0]]);
  });
});
