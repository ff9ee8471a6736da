import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDomicile, type DomicileServer } from '@domicile/testkit';

const BIN = fileURLToPath(new URL('../bin/domicile.js', import.meta.url));
const REPO = path.resolve(path.dirname(BIN), '../../..');

/** Runs the real CLI against the real server; never throws. */
function domicile(s: DomicileServer, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], {
      cwd: REPO,
      env: { ...process.env, DOMICILE_URL: s.url, DOMICILE_ADMIN_TOKEN: s.adminToken, ...env },
      timeout: 30_000,
    }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

describe('domicile CLI against a real node', () => {
  let s: DomicileServer;
  beforeAll(async () => { s = await startDomicile(); });
  afterAll(async () => s?.dispose());

  it('creates, shows, lists and erases tenants, with --json for scripts', async () => {
    const created = await domicile(s, ['tenant', 'create', 'cli-co', '--residency', 'eu', '--region', 'eu-central', '--json']);
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ id: 'cli-co', region: 'eu-central', epoch: 1 });

    const shown = await domicile(s, ['tenant', 'show', 'cli-co']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('eu-central');

    await domicile(s, ['tenant', 'create', 'cli-us', '--residency', 'us']);
    const listed = await domicile(s, ['tenant', 'list', '--residency', 'us', '--json']);
    expect(JSON.parse(listed.stdout).tenants.map((t: { id: string }) => t.id)).toEqual(['cli-us']);

    const refused = await domicile(s, ['tenant', 'create', 'acme-gmbh', '--residency', 'eu', '--region', 'eu-west']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('POLICY_VIOLATION');

    const noConfirm = await domicile(s, ['tenant', 'erase', 'cli-us']);
    expect(noConfirm.code).toBe(2);
    expect((await s.api('GET', '/v1/tenants/cli-us')).status).toBe(200);
    const erased = await domicile(s, ['tenant', 'erase', 'cli-us', '--yes']);
    expect(erased.code).toBe(0);
    expect((await s.api('GET', '/v1/tenants/cli-us')).status).toBe(404);
  });

  it('issues a tenant token that works on the data plane, and revokes it', async () => {
    const tok = await domicile(s, ['token', 'create', 'cli-co', '--scope', 'write']);
    expect(tok.code).toBe(0);
    const token = tok.stdout.trim();
    expect(token.split('.')).toHaveLength(3);
    expect((await s.api('POST', '/v1/tenants/cli-co/query', { sql: 'SELECT 1' }, token)).status).toBe(200);
    expect((await domicile(s, ['token', 'revoke', 'cli-co'])).code).toBe(0);
    expect((await s.api('POST', '/v1/tenants/cli-co/query', { sql: 'SELECT 1' }, token)).status).toBe(401);
  });

  it('reads the generated admin token file of a local node when no token is given', async () => {
    const r = await domicile(s, ['tenant', 'list', '--json'], { DOMICILE_ADMIN_TOKEN: '', DOMICILE_DATA_DIR: s.dataDir });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('admin-token');
  });

  it('exits 1 with the code on a wrong token and 3 when no node answers', async () => {
    const wrong = await domicile(s, ['tenant', 'list'], { DOMICILE_ADMIN_TOKEN: 'wrong-token-wrong-token' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('UNAUTHORIZED');
    const down = await domicile(s, ['tenant', 'list', '--url', 'http://127.0.0.1:9']);
    expect(down.code).toBe(3);
  });

  it('shows the audit log of a tenant', async () => {
    const r = await domicile(s, ['audit', 'log', '--tenant', 'cli-co', '--json']);
    expect(r.code).toBe(0);
    const actions = JSON.parse(r.stdout).events.map((e: { action: string }) => e.action);
    expect(actions).toEqual(['token.revoke', 'tenant.create']);
  });
});
