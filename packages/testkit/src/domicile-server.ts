import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = path.join(REPO, 'packages/cli/bin/domicile.js');

/** A free TCP port on 127.0.0.1 (bound and released; the race window is tiny and local). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** A `domicile serve` child process started by a test. */
export interface DomicileServer {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** The admin token (generated into the data dir unless the env set one). */
  readonly adminToken: string;
  /** Everything the process printed (pino JSON lines and stderr). */
  output(): string;
  /** SIGTERM and wait for exit (graceful). Returns the exit code. */
  stop(): Promise<number | null>;
  /** Sends a signal (e.g. SIGHUP) to the running process. */
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  /** Start again with the same data dir, port and env. */
  restart(): Promise<void>;
  /** fetch against the server with the admin token; JSON in and out. */
  api(method: string, route: string, body?: unknown, token?: string): Promise<{ status: number; body: any; headers: Headers }>;
  /** SIGKILL (if running: no graceful stop) and delete the data dir. */
  dispose(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => { for (const c of live) c.kill('SIGKILL'); });

/** Starts `domicile serve` on a free port with a fresh temp data dir; resolves once /readyz answers 200. */
export async function startDomicile(opts: { env?: Record<string, string>; dataDir?: string } = {}): Promise<DomicileServer> {
  const port = await freePort();
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(tmpdir(), 'domicile-e2e-'));
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let out = '';
  let exited: Promise<number | null> = Promise.resolve(null);

  const start = async () => {
    out = '';
    child = spawn(process.execPath, [BIN, 'serve'], {
      cwd: REPO,
      env: { ...process.env, DOMICILE_HOST: '127.0.0.1', DOMICILE_PORT: String(port), DOMICILE_DATA_DIR: dataDir, DOMICILE_WORKERS: '2', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(child);
    const c = child;
    c.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    c.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    exited = new Promise((resolve) => c.on('exit', (code) => { live.delete(c); resolve(code); }));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`domicile serve exited with ${c.exitCode}:\n${out}`);
      try {
        const res = await fetch(`${url}/readyz`);
        if (res.status === 200) return;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) { c.kill('SIGKILL'); throw new Error(`domicile serve did not become ready:\n${out}`); }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await start();
  const adminToken = opts.env?.DOMICILE_ADMIN_TOKEN ?? readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();

  const server: DomicileServer = {
    url, port, dataDir, adminToken,
    output: () => out,
    async stop() {
      if (!child || child.exitCode !== null) return child?.exitCode ?? null;
      child.kill('SIGTERM');
      return exited;
    },
    signal(sig) {
      child?.kill(sig);
    },
    async kill() {
      if (!child || child.exitCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
    async restart() {
      await server.stop();
      await start();
    },
    async api(method, route, body, token = adminToken) {
      const res = await fetch(`${url}${route}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try { parsed = JSON.parse(text); } catch { /* not JSON */ }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async dispose() {
      await server.kill();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}
