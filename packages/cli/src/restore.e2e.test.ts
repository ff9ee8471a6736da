// `domicile backups` and online `domicile restore` as a user runs them: the
// real bin against a real `domicile serve` (embedded default).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDomicile, type DomicileServer } from '@domicile/testkit';
import { runCli } from './cli-process.test-support.ts';

const cli = runCli;

describe('domicile backups and restore against a running node', () => {
  let s: DomicileServer;
  const q = (sql: string) => s.api('POST', '/v1/tenants/rc/query', { sql });
  beforeAll(async () => {
    s = await startDomicile();
    expect((await s.api('POST', '/v1/tenants', { id: 'rc', residency: 'eu' })).status).toBe(201);
    expect((await q('CREATE TABLE kv (k INTEGER PRIMARY KEY)')).status).toBe(200);
    expect((await q('INSERT INTO kv VALUES (1), (2)')).status).toBe(200);
  }, 30_000);
  afterAll(async () => { await s?.dispose(); });

  it('lists generations, restores in place by txid and forks by time; exit 1 with the server\'s code on a refusal', async () => {
    let gens: Array<{ lastTxid: number }> = [];
    for (let i = 0; i < 100 && (gens.length === 0 || gens.at(-1)!.lastTxid < 2); i++) {
      const r = await cli(s, ['backups', 'rc', '--json']);
      expect(r.code).toBe(0);
      gens = JSON.parse(r.stdout).generations;
      if (gens.at(-1)?.lastTxid !== 2) await new Promise((res) => setTimeout(res, 50));
    }
    expect(gens.at(-1)!.lastTxid).toBe(2);
    const table = await cli(s, ['backups', 'rc']);
    expect(table.stdout).toMatch(/GENERATION\s+EPOCH\s+REGION/);
    expect(table.stdout).toContain('eu-west');

    const at = new Date().toISOString();
    await new Promise((res) => setTimeout(res, 30));
    expect((await q('INSERT INTO kv VALUES (3)')).status).toBe(200);

    const inPlace = await cli(s, ['restore', 'rc', '--txid', '1']);
    expect(inPlace.code, inPlace.stderr).toBe(0);
    expect(inPlace.stdout).toContain('restored rc to txid 1');
    expect((await q('SELECT count(*) FROM kv')).body.rows).toEqual([[0]]);

    const fork = await cli(s, ['restore', 'rc', '--at', at, '--as', 'rc-fork', '--json']);
    expect(fork.code, fork.stderr).toBe(0);
    expect(JSON.parse(fork.stdout)).toMatchObject({ tenant: 'rc-fork', txid: 2, fork: true });
    expect((await s.api('POST', '/v1/tenants/rc-fork/query', { sql: 'SELECT k FROM kv ORDER BY k' })).body.rows).toEqual([[1], [2]]);

    const refused = await cli(s, ['restore', 'rc', '--txid', '999999']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('BAD_REQUEST');
  }, 60_000);
});
