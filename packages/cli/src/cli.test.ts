// The real bin as a child process against a canned contract server: what a
// user and a script see (stdout, stderr, exit code).
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCannedServer, type CannedServer } from '@domicile/client/testing';
import { parsePolicy } from '@domicile/policy';
import { readFileSync } from 'node:fs';

const BIN = fileURLToPath(new URL('../bin/domicile.js', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../test-fixtures/', import.meta.url));
const TOKEN = 'cli-admin-token';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let cwd: string;
const servers: CannedServer[] = [];

beforeAll(async () => {
  cwd = await mkdtemp(path.join(tmpdir(), 'domicile-cli-'));
});
afterAll(async () => {
  await rm(cwd, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(...args: Parameters<typeof startCannedServer>): Promise<CannedServer> {
  const s = await startCannedServer(...args);
  servers.push(s);
  return s;
}

// Async on purpose: the canned server answers from this same process.
function cli(args: string[], env: Record<string, string> = {}, opts: { cwd?: string } = {}): Promise<Result> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DOMICILE_')));
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? cwd, env: { ...clean, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end();
  });
}

function env(s: CannedServer): Record<string, string> {
  return { DOMICILE_URL: s.url, DOMICILE_ADMIN_TOKEN: TOKEN };
}

const acme = {
  id: 'acme', residency: 'eu', region: 'eu-west', node: 'eu-west-1', epoch: 3, state: 'active', durability: 'async',
  createdAt: '2025-01-01T00:00:00.000Z', replication: { mode: 'async', lagMs: 12, lastTxid: 40, replicatedTxid: 39 },
};

describe('exit codes', () => {
  it('--help exits 0 and lists the commands', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['serve', 'tenant', 'token', 'policy', 'move', 'restore', 'backups', 'audit']) expect(r.stdout).toContain(c);
  });

  it('an unknown option is a usage error: exit 2 and a message on stderr', async () => {
    const r = await cli(['tenant', 'list', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option '--bogus'");
    expect(r.stdout).toBe('');
  });

  it('a missing required option is a usage error (exit 2)', async () => {
    const r = await cli(['tenant', 'create', 'acme']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--residency');
  });

  it('a bad number is a usage error (exit 2)', async () => {
    const r = await cli(['tenant', 'list', '--limit', 'ten']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--limit must be a positive integer');
  });

  it('no server at the url: exit 3, error NODE_UNAVAILABLE, no stack trace', async () => {
    const s = await server();
    const url = s.url;
    await s.close();
    servers.pop();
    const r = await cli(['tenant', 'show', 'acme'], { DOMICILE_URL: url, DOMICILE_ADMIN_TOKEN: TOKEN });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^error NODE_UNAVAILABLE: cannot reach/m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a server error: exit 1, `error CODE: message` and its details on stderr', async () => {
    const s = await server({
      'POST /v1/tenants': { status: 422, json: { error: { code: 'POLICY_VIOLATION', message: 'region us-east is outside residency eu', rule: 'residency-regions' } } },
    });
    const r = await cli(['tenant', 'create', 'acme', '--residency', 'eu', '--region', 'us-east'], env(s));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error POLICY_VIOLATION: region us-east is outside residency eu');
    expect(r.stderr).toContain('rule: residency-regions');
    expect(r.stdout).toBe('');
    expect(s.requests[0]!.json).toEqual({ id: 'acme', residency: 'eu', region: 'us-east' });
  });

  it('a server 503 is a server error (exit 1), not "unreachable"', async () => {
    const s = await server({ 'POST /v1/tenants': { status: 503, headers: { 'retry-after': '1' }, json: { error: { code: 'NODE_UNAVAILABLE', message: 'no live node in us-east' } } } });
    const r = await cli(['tenant', 'create', 'x', '--residency', 'us'], env(s));
    expect(r.code).toBe(1);
  });
});

describe('--json', () => {
  it('prints exactly one parseable document: the server answer', async () => {
    const s = await server({ 'GET /v1/tenants/acme': { json: acme } });
    const r = await cli(['tenant', 'show', 'acme', '--json'], env(s));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(acme);
  });

  it('prints the error as one document on stdout and keeps the exit code', async () => {
    const s = await server();
    const r = await cli(['tenant', 'show', 'ghost', '--json'], env(s));
    s.route('GET /v1/tenants/ghost', { status: 404, json: { error: { code: 'TENANT_NOT_FOUND', message: 'no tenant ghost' } } });
    const r2 = await cli(['tenant', 'show', 'ghost', '--json'], env(s));
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).error.code).toBe('NOT_FOUND');
    expect(r2.code).toBe(1);
    expect(JSON.parse(r2.stdout)).toEqual({ error: { code: 'TENANT_NOT_FOUND', message: 'no tenant ghost', status: 404 } });
  });
});

describe('tenant', () => {
  it('show prints key: value lines with nested fields flattened', async () => {
    const s = await server({ 'GET /v1/tenants/acme': { json: acme } });
    const r = await cli(['tenant', 'show', 'acme'], env(s));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^region: +eu-west$/m);
    expect(r.stdout).toMatch(/^replication\.lagMs: +12$/m);
    expect(s.requests[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it('list follows every cursor and prints one aligned table', async () => {
    const s = await server({
      'GET /v1/tenants': (req) => {
        const c = req.query.get('cursor');
        if (c === null) return { json: { tenants: [acme, { ...acme, id: 'beta-long-name' }], nextCursor: 'p2' } };
        return { json: { tenants: [{ ...acme, id: 'gamma', region: 'us-east' }], nextCursor: null } };
      },
    });
    const r = await cli(['tenant', 'list', '--residency', 'eu'], env(s));
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^ID +RESIDENCY +REGION +NODE/);
    expect(lines.slice(1).map((l) => l.split(/ +/)[0])).toEqual(['acme', 'beta-long-name', 'gamma']);
    // Aligned: the REGION column starts at the same offset on every line.
    expect(new Set(lines.map((l, i) => (i === 0 ? l.indexOf('REGION') : l.indexOf(i === 3 ? 'us-east' : 'eu-west')))).size).toBe(1);
    expect(s.requests.map((q) => [q.query.get('residency'), q.query.get('cursor')])).toEqual([['eu', null], ['eu', 'p2']]);
  });

  it('list --limit stops early and --json reports where to continue', async () => {
    const s = await server({ 'GET /v1/tenants': { json: { tenants: [acme, { ...acme, id: 'b' }], nextCursor: 'more' } } });
    const r = await cli(['tenant', 'list', '--limit', '2', '--json'], env(s));
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.tenants.map((t: { id: string }) => t.id)).toEqual(['acme', 'b']);
    expect(doc.nextCursor).toBe('more');
    expect(s.requests).toHaveLength(1);
    expect(s.requests[0]!.query.get('limit')).toBe('2');
  });

  it('erase without --yes and without a terminal refuses with exit 2 and sends nothing', async () => {
    const s = await server({ 'DELETE /v1/tenants/acme': { json: { erased: { files: 3, bucketObjects: 7 } } } });
    const r = await cli(['tenant', 'erase', 'acme'], env(s));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--yes');
    expect(s.requests).toHaveLength(0);
  });

  it('erase --yes erases and says what was deleted', async () => {
    const s = await server({ 'DELETE /v1/tenants/acme': { json: { erased: { files: 3, bucketObjects: 7 } } } });
    const r = await cli(['tenant', 'erase', 'acme', '--yes'], env(s));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('erased tenant acme: 3 files, 7 bucket objects\n');
    const q = await cli(['tenant', 'erase', 'acme', '--yes', '--quiet'], env(s));
    expect(q.stdout).toBe('');
  });
});

describe('token', () => {
  it('create prints the token alone on stdout', async () => {
    const s = await server({ 'POST /v1/tenants/acme/tokens': { status: 201, json: { token: 'eyJhbGciOiJIUzI1NiJ9.e30.sig', expiresAt: '2025-01-01T01:00:00Z' } } });
    const r = await cli(['token', 'create', 'acme', '--scope', 'read', '--ttl', '3600'], env(s));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('eyJhbGciOiJIUzI1NiJ9.e30.sig\n');
    expect(r.stderr).toContain('expires 2025-01-01T01:00:00Z');
    expect(s.requests[0]!.json).toEqual({ scope: 'read', ttlSeconds: 3600 });
  });

  it('create refuses a scope other than read or write (exit 2)', async () => {
    const r = await cli(['token', 'create', 'acme', '--scope', 'admin']);
    expect(r.code).toBe(2);
  });

  it('uses the admin token file of a local embedded node and names the file on stderr', async () => {
    const s = await server({ 'POST /v1/tenants/acme/tokens/revoke': { json: {} } });
    const dataDir = path.join(cwd, 'custom-data');
    await mkdir(dataDir, { recursive: true });
    await writeFile(path.join(dataDir, 'admin-token'), 'from-the-file\n');
    const r = await cli(['token', 'revoke', 'acme'], { DOMICILE_URL: s.url, DOMICILE_DATA_DIR: dataDir });
    expect(r.code).toBe(0);
    expect(s.requests[0]!.headers.authorization).toBe('Bearer from-the-file');
    expect(r.stderr).toContain(path.join(dataDir, 'admin-token'));
    expect(r.stdout).toBe('revoked every token of acme issued until now\n');
  });

  it('prefers --token over DOMICILE_ADMIN_TOKEN', async () => {
    const s = await server({ 'POST /v1/tenants/acme/tokens/revoke': { json: {} } });
    await cli(['token', 'revoke', 'acme', '--token', 'flag-token', '--url', s.url], { DOMICILE_ADMIN_TOKEN: 'env-token' });
    expect(s.requests[0]!.headers.authorization).toBe('Bearer flag-token');
  });
});

describe('policy check', () => {
  it('accepts a valid file and explains it', async () => {
    const r = await cli(['policy', 'check', path.join(FIXTURES, 'valid-policy.yaml')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ok: 2 regions, 2 residencies, 1 pin, hash [0-9a-f]{64}$/m);
    expect(r.stdout).toMatch(/^residency eu: lives in eu-west .*307/m);
    expect(r.stdout).toMatch(/^pin pinned-co: .*eu-west/m);
  });

  it('prints one file:line:col error per problem and exits 1', async () => {
    const file = path.join(FIXTURES, 'invalid-policy.yaml');
    const r = await cli(['policy', 'check', file]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^${escape(file)}:8:\\d+: residencies\\.eu\\.default: `));
    expect(lines[1]).toMatch(new RegExp(`^${escape(file)}:10:\\d+: residencies\\.any\\.transit: `));
    expect(r.stdout).toBe('');
  });

  it('--json gives the problems with their lines', async () => {
    const r = await cli(['policy', 'check', path.join(FIXTURES, 'invalid-policy.yaml'), '--json']);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc.ok).toBe(false);
    expect(doc.errors.map((e: { line: number }) => e.line)).toEqual([8, 10]);
  });
});

describe('move', () => {
  const policyBody = (() => {
    const p = parsePolicy(readFileSync(path.join(FIXTURES, 'valid-policy.yaml'), 'utf8'), 'valid-policy.yaml');
    return JSON.parse(JSON.stringify(p));
  })();

  function status(phase: string, extra: Record<string, unknown> = {}) {
    return { moveId: 'm1', tenant: 'acme', from: 'eu-west', to: 'us-east', node: 'us-east-1', phase, bytesCopied: 50, bytesTotal: 100, writePauseMs: null, ...extra };
  }

  it('follows the move to the end and prints the write pause', async () => {
    let polls = 0;
    const s = await server({
      'POST /v1/tenants/acme/move': { status: 202, json: { moveId: 'm1' } },
      'GET /v1/moves/m1': () => (++polls < 3 ? { json: status(polls === 1 ? 'copying' : 'fenced') } : { json: status('done', { bytesCopied: 100, writePauseMs: 37 }) }),
    });
    const r = await cli(['move', 'acme', '--to', 'us-east'], env(s));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('moved acme: eu-west → us-east (node us-east-1)');
    expect(r.stdout).toContain('write pause: 37 ms');
    expect(r.stderr).toContain('copying');
    expect(s.requests[0]!.json).toEqual({ to: 'us-east' });
  });

  it('exits 1 with the move\'s own error when it aborts', async () => {
    const s = await server({
      'POST /v1/tenants/acme/move': { status: 202, json: { moveId: 'm1' } },
      'GET /v1/moves/m1': { json: status('aborted', { error: { code: 'REPLICATION_UNAVAILABLE', message: 'bucket of us-east is down' } }) },
    });
    const r = await cli(['move', 'acme', '--to', 'us-east', '--json'], env(s));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error REPLICATION_UNAVAILABLE: bucket of us-east is down');
    expect(JSON.parse(r.stdout).error.code).toBe('REPLICATION_UNAVAILABLE');
  });

  it('--dry-run explains an allowed move from the server\'s policy and moves nothing', async () => {
    const s = await server({
      'GET /v1/tenants/acme': { json: { ...acme, residency: 'any' } },
      'GET /v1/policy': { json: policyBody },
    });
    const r = await cli(['move', 'acme', '--to', 'us-east', '--dry-run'], env(s));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^move acme \(residency any\) eu-west → us-east: allowed$/m);
    expect(r.stdout).toContain('age out with retention');
    expect(s.requests.some((q) => q.method === 'POST')).toBe(false);
  });

  it('--dry-run exits 1 when the policy refuses, with the reason', async () => {
    const s = await server({
      'GET /v1/tenants/acme': { json: acme },
      'GET /v1/policy': { json: { policy: policyBody, hash: policyBody.hash } },
    });
    const r = await cli(['move', 'acme', '--to', 'us-east', '--dry-run', '--json'], env(s));
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc.allowed).toBe(false);
    expect(doc.rule).toBe('residency-regions');
    expect(doc.reasons.join(' ')).toContain('us-east');
  });
});

describe('restore, backups, audit', () => {
  it('restore needs exactly one of --at and --txid (exit 2)', async () => {
    expect((await cli(['restore', 'acme'])).code).toBe(2);
    expect((await cli(['restore', 'acme', '--at', '2025-01-01T00:00:00Z', '--txid', '3'])).code).toBe(2);
    expect((await cli(['restore', 'acme', '--at', 'yesterday-ish'])).code).toBe(2);
  });

  it('restore --txid --as forks and reports the txid', async () => {
    const s = await server({ 'POST /v1/tenants/acme/restore': { json: { tenant: 'acme-copy', txid: 5, time: '2025-01-01T00:00:05Z' } } });
    const r = await cli(['restore', 'acme', '--txid', '5', '--as', 'acme-copy'], env(s));
    expect(r.code).toBe(0);
    expect(s.requests[0]!.json).toEqual({ txid: 5, as: 'acme-copy' });
    expect(r.stdout).toBe('restored acme as acme-copy to txid 5 (2025-01-01T00:00:05Z)\n');
  });

  it('restore in place also prints the txid the restored state now carries and the pause', async () => {
    const s = await server({ 'POST /v1/tenants/acme/restore': { json: { tenant: 'acme', txid: 5, time: '2025-01-01T00:00:05Z', newTxid: 42, pauseMs: 12.5, fork: false } } });
    const r = await cli(['restore', 'acme', '--at', '2025-01-01T00:00:07+02:00'], env(s));
    expect(r.code).toBe(0);
    expect(s.requests[0]!.json).toEqual({ at: '2024-12-31T22:00:07.000Z' });
    expect(r.stdout).toBe('restored acme to txid 5 (2025-01-01T00:00:05Z)\n  now at txid 42 (new backup generation); requests paused 12.5 ms\n');
  });

  it('backups prints one row per generation', async () => {
    const s = await server({
      'GET /v1/tenants/acme/backups': { json: { generations: [
        { generation: 'g1', epoch: 1, region: 'eu-west', snapshots: [{ txid: 1 }, { txid: 9 }], segments: 12, firstTxid: 1, lastTxid: 20, firstTime: 't1', lastTime: 't2' },
      ] } },
    });
    const r = await cli(['backups', 'acme'], env(s));
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd().split('\n')[1]!.split(/ +/)).toEqual(['g1', '1', 'eu-west', '2', '12', '1', '20', 't1', 't2']);
  });

  it('audit residency exits 1 on a violation and 0 without', async () => {
    const body = {
      tenants: [{ tenant: 'acme', residency: 'eu', region: 'eu-west', bytesByRegion: { 'eu-west': 4096, 'us-east': 1024 } }],
      violations: [{ tenant: 'acme', region: 'us-east', message: '1024 bytes in us-east, outside residency eu' }],
    };
    const s = await server({ 'GET /v1/audit/residency': { json: body } });
    const bad = await cli(['audit', 'residency'], env(s));
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('VIOLATION acme: 1024 bytes in us-east, outside residency eu');
    expect(bad.stdout).toContain('eu-west 4.0 KiB, us-east 1.0 KiB');
    s.route('GET /v1/audit/residency', { json: { ...body, violations: [] } });
    const good = await cli(['audit', 'residency', '--json'], env(s));
    expect(good.code).toBe(0);
    expect(JSON.parse(good.stdout).violations).toEqual([]);
  });

  it('audit log passes --tenant and follows cursors up to the limit', async () => {
    const s = await server({
      'GET /v1/audit': (req) => (req.query.get('cursor') === null
        ? { json: { events: [{ time: 't1', actor: 'admin', action: 'tenant.create', tenant: 'acme' }], nextCursor: 'c' } }
        : { json: { events: [{ seq: 2, time: 't2', actor: 'ops', action: 'tenant.move', tenant: 'acme', details: { to: 'eu-central' }, region: 'eu-west' }], nextCursor: null } }),
    });
    const r = await cli(['audit', 'log', '--tenant', 'acme'], env(s));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^t2 +ops +tenant\.move +acme +to=eu-central region=eu-west$/m);
    expect(s.requests.map((q) => q.query.get('tenant'))).toEqual(['acme', 'acme']);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
