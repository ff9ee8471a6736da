// `domicile schema apply` as a user runs it: the real bin against a real
// `domicile serve` (embedded default, shipped policy) on a free port.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDomicile, type DomicileServer } from '@domicile/testkit';

const BIN = fileURLToPath(new URL('../bin/domicile.js', import.meta.url));

function cli(s: DomicileServer, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DOMICILE_')));
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...clean, DOMICILE_URL: s.url, DOMICILE_ADMIN_TOKEN: s.adminToken }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end();
  });
}

describe('domicile schema apply against a running node', () => {
  let s: DomicileServer;
  const dir = mkdtempSync(path.join(tmpdir(), 'domicile-migrations-'));
  const tenants = ['shop-a', 'shop-b', 'shop-c'];

  beforeAll(async () => {
    s = await startDomicile();
    for (const id of tenants) expect((await s.api('POST', '/v1/tenants', { id, residency: id === 'shop-c' ? 'us' : 'eu' })).status).toBe(201);
    // Numeric, not lexical, order: 10 comes after 2.
    writeFileSync(path.join(dir, '0001_init.sql'), 'CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);\n');
    writeFileSync(path.join(dir, '2_orders.sql'), '-- orders\nCREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customers);\nCREATE INDEX orders_customer ON orders (customer);\n');
    writeFileSync(path.join(dir, '10_status.sql'), "ALTER TABLE orders ADD COLUMN status TEXT NOT NULL DEFAULT 'new';\n");
    writeFileSync(path.join(dir, 'README.md'), 'not a migration');
  });
  afterAll(async () => {
    await s?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const applied = async (tenant: string) => {
    const r = await s.api('POST', `/v1/tenants/${tenant}/query`, { sql: 'SELECT name FROM _domicile_migrations ORDER BY txid' });
    return r.body.rows.map((row: string[]) => row[0]);
  };

  it('applies a directory of numbered files to --all in numeric order and exits 0', async () => {
    const r = await cli(s, ['schema', 'apply', dir, '--all', '--concurrency', '2']);
    expect(r.stderr).toContain('stored 3 new migrations: 0001_init, 2_orders, 10_status');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('applied 9 migrations to 3 tenants: 3 migrated, 0 up to date, 0 failed');
    for (const t of tenants) expect(await applied(t)).toEqual(['0001_init', '2_orders', '10_status']);
    const stored = await s.api('GET', '/v1/schema');
    expect(stored.body.migrations.map((m: { name: string }) => m.name)).toEqual(['0001_init', '2_orders', '10_status']);
  });

  it('is a no-op when run again', async () => {
    const r = await cli(s, ['schema', 'apply', dir, '--all']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('are stored already');
    expect(r.stdout).toContain('nothing to apply: 3 tenants up to date with 3 migrations');
    const json = await cli(s, ['schema', 'apply', dir, '--all', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ added: [], job: { state: 'done', total: 3, upToDate: 3, applied: 0, failed: 0, migrationsApplied: 0 } });
  });

  it('exits 1 with a per-tenant failure report when a tenant fails, and applies the rest', async () => {
    await s.api('POST', '/v1/tenants/shop-c/query', { sql: 'CREATE TABLE coupons (legacy TEXT)' });
    writeFileSync(path.join(dir, '11_coupons.sql'), 'CREATE TABLE coupons (code TEXT PRIMARY KEY);\n');
    const r = await cli(s, ['schema', 'apply', dir, '--all']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('1 tenant failed');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toContain('applied 2 migrations to 3 tenants: 2 migrated, 0 up to date, 1 failed');
    const header = lines.findIndex((l) => l.startsWith('TENANT'));
    expect(lines[header]!.split(/ +/)).toEqual(['TENANT', 'MIGRATION', 'CODE', 'MESSAGE']);
    expect(lines[header + 1]!.split(/ +/).slice(0, 3)).toEqual(['shop-c', '11_coupons', 'SQL_ERROR']);
    expect(lines[header + 1]).toContain('coupons');
    expect(await applied('shop-a')).toContain('11_coupons');
    expect(await applied('shop-c')).not.toContain('11_coupons');
    // Once the tenant is fixed, the same command finishes it.
    await s.api('POST', '/v1/tenants/shop-c/query', { sql: 'DROP TABLE coupons' });
    const again = await cli(s, ['schema', 'apply', dir, '--tenant', 'shop-c', '--tenant', 'shop-a']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('applied 1 migration to 1 tenant: 1 migrated, 1 up to date, 0 failed');
  });

  it('refuses an edited stored migration with SCHEMA_CONFLICT (exit 1) and a directory without a target (exit 2)', async () => {
    writeFileSync(path.join(dir, '2_orders.sql'), 'CREATE TABLE orders (id INTEGER PRIMARY KEY);\n');
    const r = await cli(s, ['schema', 'apply', dir, '--all']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error SCHEMA_CONFLICT');
    expect(r.stderr).toContain('name: 2_orders');
    expect((await cli(s, ['schema', 'apply', dir])).code).toBe(2);
    expect((await cli(s, ['schema', 'apply', path.join(dir, 'missing'), '--all'])).code).toBe(2);
    writeFileSync(path.join(dir, '2_dup.sql'), 'SELECT 1;');
    const dup = await cli(s, ['schema', 'apply', dir, '--all']);
    expect(dup.code).toBe(2);
    expect(dup.stderr).toContain('have the same number');
  });
});
