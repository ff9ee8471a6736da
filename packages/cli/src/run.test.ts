// `run()` in process with a fake io: the paths a child process cannot reach
// (a terminal on stdin or stderr).
import { afterEach, describe, expect, it } from 'vitest';
import { startCannedServer, type CannedServer } from '@domicile/client/testing';
import type { CliIo } from './io.ts';
import { run } from './run.ts';

const servers: CannedServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function fakeIo(url: string, opts: { stdinIsTTY?: boolean; stderrIsTTY?: boolean; answer?: string } = {}) {
  const out = { stdout: '', stderr: '', prompts: [] as string[] };
  const io: CliIo = {
    stdout: { write: (s: string) => { out.stdout += s; } },
    stderr: { write: (s: string) => { out.stderr += s; }, isTTY: opts.stderrIsTTY ?? false },
    stdinIsTTY: opts.stdinIsTTY ?? false,
    env: { DOMICILE_URL: url, DOMICILE_ADMIN_TOKEN: 't' },
    cwd: process.cwd(),
    prompt: async (q) => {
      out.prompts.push(q);
      return opts.answer ?? '';
    },
  };
  return { io, out };
}

async function server(routes: Parameters<typeof startCannedServer>[0]): Promise<CannedServer> {
  const s = await startCannedServer(routes);
  servers.push(s);
  return s;
}

describe('tenant erase on a terminal', () => {
  it('erases when the tenant id is typed back', async () => {
    const s = await server({ 'DELETE /v1/tenants/acme': { json: { erased: { files: 1, bucketObjects: 2 } } } });
    const { io, out } = fakeIo(s.url, { stdinIsTTY: true, answer: 'acme\n' });
    expect(await run(['tenant', 'erase', 'acme'], io)).toBe(0);
    expect(out.prompts[0]).toContain('cannot be undone');
    expect(s.requests.map((r) => r.method)).toEqual(['DELETE']);
  });

  it('erases nothing and exits 1 on any other answer', async () => {
    const s = await server({ 'DELETE /v1/tenants/acme': { json: { erased: { files: 1, bucketObjects: 2 } } } });
    const { io, out } = fakeIo(s.url, { stdinIsTTY: true, answer: 'y' });
    expect(await run(['tenant', 'erase', 'acme'], io)).toBe(1);
    expect(out.stderr).toContain('not erased');
    expect(s.requests).toHaveLength(0);
  });
});

describe('move progress', () => {
  it('draws a redrawn bar with phase and bytes on a terminal stderr', async () => {
    let n = 0;
    const st = (phase: string, copied: number) => ({ moveId: 'm', tenant: 'a', from: 'x', to: 'y', node: 'y1', phase, bytesCopied: copied, bytesTotal: 2048, writePauseMs: phase === 'done' ? 5 : null });
    const s = await server({
      'POST /v1/tenants/a/move': { status: 202, json: { moveId: 'm' } },
      'GET /v1/moves/m': () => ({ json: ++n === 1 ? st('copying', 1024) : st('done', 2048) }),
    });
    const { io, out } = fakeIo(s.url, { stderrIsTTY: true });
    expect(await run(['move', 'a', '--to', 'y'], io)).toBe(0);
    expect(out.stderr).toMatch(/\rcopying +\[#{15}-{15}\]  50%  1\.0 KiB \/ 2\.0 KiB/);
    expect(out.stderr).toMatch(/\rdone +\[#{30}\] 100%/);
    expect(out.stdout).toContain('write pause: 5 ms');
  });

  it('--no-wait prints the move id alone', async () => {
    const s = await server({ 'POST /v1/tenants/a/move': { status: 202, json: { moveId: 'm-42' } } });
    const { io, out } = fakeIo(s.url);
    expect(await run(['move', 'a', '--to', 'y', '--no-wait'], io)).toBe(0);
    expect(out.stdout).toBe('m-42\n');
  });
});
