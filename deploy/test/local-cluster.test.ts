// `pnpm cluster` (deploy/local/cluster.ts), run as users run it: it starts
// Redis, an S3-compatible server per region and the nodes, prints the URLs and
// the admin token; the cluster it prints works (a tenant created through a
// node of another region lands in its own); Ctrl-C (SIGINT) stops every
// process it started and exits 0.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const POLICY = `version: 1
regions:
  north: { jurisdiction: x }
  south: { jurisdiction: y }
residencies:
  n: { regions: [north] }
  s: { regions: [south], transit: redirect }
`;

describe('pnpm cluster', () => {
  const scratch = mkdtempSync(path.join(tmpdir(), 'domicile-local-cluster-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('starts Redis, S3 servers and two nodes per region, prints how to reach them, and stops everything on Ctrl-C', async () => {
    const policy = path.join(scratch, 'policy.yaml');
    writeFileSync(policy, POLICY);
    const child = spawn(process.execPath, ['--import', 'tsx', 'deploy/local/cluster.ts', '--policy', policy, '--nodes-per-region', '2', '--ttl', '3000'], {
      cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 60_000;
      while (!out.includes('Ctrl-C stops everything.') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
      expect(out).toContain('Domicile cluster ready: 4 nodes, 2 regions');
      const urls = Object.fromEntries([...out.matchAll(/^ {2}((?:north|south)-\d)\s+(http:\/\/127\.0\.0\.1:\d+)$/gm)].map((m) => [m[1], m[2]]));
      expect(Object.keys(urls).sort()).toEqual(['north-1', 'north-2', 'south-1', 'south-2']);
      const token = /admin token\s+(\S+)/.exec(out)![1]!;
      const api = async (url: string, method: string, route: string, body?: unknown) => {
        const res = await fetch(`${url}${route}`, {
          method, redirect: 'manual',
          headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
          ...(body ? { body: JSON.stringify(body) } : {}),
        });
        return { status: res.status, body: await res.json().catch(() => null) as any };
      };
      const cluster = await api(urls['north-1']!, 'GET', '/v1/cluster');
      expect(cluster.status).toBe(200);
      expect(cluster.body.nodes.filter((n: any) => n.healthy).map((n: any) => n.id)).toEqual(['north-1', 'north-2', 'south-1', 'south-2']);
      const created = await api(urls['north-2']!, 'POST', '/v1/tenants', { id: 'acme', residency: 's' });
      expect(created.status).toBe(201);
      expect(created.body.region).toBe('south');
      expect((await api(urls['south-1']!, 'POST', '/v1/tenants/acme/query', { sql: 'SELECT 1' })).status).toBe(200);

      child.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(out).toContain('stopped');
      for (const url of Object.values(urls)) await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    } finally {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    }
  }, 120_000);
});
