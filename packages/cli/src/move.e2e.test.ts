// `domicile move` and `domicile audit residency` as a user runs them: the
// real bin against a real `domicile serve` (embedded default) on a free port.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDomicile, type DomicileServer } from '@domicile/testkit';
import { runCli } from './cli-process.test-support.ts';

const cli = runCli;

const policy = (euRegions: string) => `version: 1
regions:
  eu-west:    { jurisdiction: eu }
  eu-central: { jurisdiction: eu }
  us-east:    { jurisdiction: us }
residencies:
  eu:
    regions: [${euRegions}]
  us:
    regions: [us-east]
`;

describe('domicile move and audit residency against a running node', () => {
  let s: DomicileServer;
  const dir = mkdtempSync(path.join(tmpdir(), 'domicile-move-cli-'));
  const policyFile = path.join(dir, 'placement.yaml');

  beforeAll(async () => {
    writeFileSync(policyFile, policy('eu-west, eu-central'));
    s = await startDomicile({ env: { DOMICILE_POLICY: policyFile } });
    expect((await s.api('POST', '/v1/tenants', { id: 'mover', residency: 'eu' })).status).toBe(201);
    expect((await s.api('POST', '/v1/tenants/mover/query', { sql: 'CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)' })).status).toBe(200);
    expect((await s.api('POST', '/v1/tenants/mover/query', { sql: "INSERT INTO kv (v) VALUES ('a'), ('b')" })).status).toBe(200);
  }, 30_000);
  afterAll(async () => {
    await s?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('--dry-run explains the decision and moves nothing (exit 1 when refused)', async () => {
    const ok = await cli(s, ['move', 'mover', '--to', 'eu-central', '--dry-run']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('allowed');
    const no = await cli(s, ['move', 'mover', '--to', 'us-east', '--dry-run']);
    expect(no.code).toBe(1);
    expect(no.stdout).toContain('refused');
    expect((await s.api('GET', '/v1/tenants/mover')).body).toMatchObject({ region: 'eu-west', epoch: 1 });
  });

  it('moves the tenant, prints the write pause, and --json prints the final status', async () => {
    const r = await cli(s, ['move', 'mover', '--to', 'eu-central']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('moved mover: eu-west → eu-central');
    expect(r.stdout).toMatch(/write pause: \d/);
    expect((await s.api('GET', '/v1/tenants/mover')).body).toMatchObject({ region: 'eu-central', epoch: 2, state: 'active' });
    expect((await s.api('POST', '/v1/tenants/mover/query', { sql: 'SELECT v FROM kv ORDER BY k' })).body.rows).toEqual([['a'], ['b']]);

    const back = await cli(s, ['move', 'mover', '--to', 'eu-west', '--json']);
    expect(back.code).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ tenant: 'mover', from: 'eu-central', to: 'eu-west', phase: 'done' });
    const refused = await cli(s, ['move', 'mover', '--to', 'us-east']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('POLICY_VIOLATION');
  });

  it('audit residency exits 0 when compliant and 1 on a violation after a policy change', async () => {
    const ok = await cli(s, ['audit', 'residency', '--json']);
    expect(ok.code).toBe(0);
    const report = JSON.parse(ok.stdout);
    expect(report.violations).toEqual([]);
    expect(Object.keys(report.tenants.find((t: { tenant: string }) => t.tenant === 'mover').bytesByRegion)).toEqual(['eu-west']);

    // eu no longer allows eu-west: the tenant keeps running, the audit flags it.
    writeFileSync(policyFile, policy('eu-central'));
    s.signal('SIGHUP');
    let bad = { code: 0, stdout: '', stderr: '' };
    for (let i = 0; i < 50 && bad.code === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      bad = await cli(s, ['audit', 'residency']);
    }
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('VIOLATION mover');
    // Moving it into compliance is allowed, and the audit is clean again.
    expect((await cli(s, ['move', 'mover', '--to', 'eu-central'])).code).toBe(0);
    expect((await cli(s, ['audit', 'residency'])).code).toBe(0);
  }, 30_000);
});
