import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
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
  /** Process id of the running process (undefined once it exited): benchmarks read its CPU time from /proc. */
  pid(): number | undefined;
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

/** HTTPS for a test server: its certificate and key files, and the CA (PEM) that signed it. */
export interface TestTls {
  certFile: string;
  keyFile: string;
  /** Trusted by the test's own requests, and by the node for its peers (`NODE_EXTRA_CA_CERTS`). */
  caFile: string;
}

/** A self-signed certificate for 127.0.0.1 (openssl), in `dir`; it is its own CA. */
export function makeTestCertificate(dir: string): TestTls {
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  const r = spawnSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile,
  ], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl could not make a test certificate: ${r.error?.message ?? r.stderr}`);
  return { certFile, keyFile, caFile: certFile };
}

/**
 * One HTTP(S) request trusting `ca` (fetch cannot take a CA per call on Node 20). A fresh
 * connection each time (no keep-alive socket of a server that was just stopped is reused) and a
 * bound (`timeoutMs`, default 10 s): a readiness poll never hangs on one attempt.
 */
export async function testRequest(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string; ca?: string; timeoutMs?: number } = {}): Promise<{ status: number; headers: Headers; text: string }> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(u, { method: opts.method ?? 'GET', headers: opts.headers, agent: false, ...(opts.ca ? { ca: opts.ca } : {}) }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
        resolve({ status: res.statusCode ?? 0, headers, text });
      });
    });
    req.setTimeout(opts.timeoutMs ?? 10_000, () => req.destroy(new Error(`no answer from ${url} within ${opts.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * Starts `domicile serve` on a free port with a fresh temp data dir; resolves once /readyz answers 200.
 * `nodeArgs` go to node before the CLI (benchmarks: `--cpu-prof`; a profile is written on a graceful `stop()`).
 */
export async function startDomicile(opts: { env?: Record<string, string>; dataDir?: string; tls?: TestTls; nodeArgs?: string[] } = {}): Promise<DomicileServer> {
  const port = await freePort();
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(tmpdir(), 'domicile-e2e-'));
  const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const ca = opts.tls ? readFileSync(opts.tls.caFile, 'utf8') : undefined;
  const tlsEnv: Record<string, string> = opts.tls
    ? { DOMICILE_TLS_CERT: opts.tls.certFile, DOMICILE_TLS_KEY: opts.tls.keyFile, NODE_EXTRA_CA_CERTS: opts.tls.caFile }
    : {};
  let child: ChildProcess | undefined;
  let out = '';
  let exited: Promise<number | null> = Promise.resolve(null);

  const start = async () => {
    out = '';
    child = spawn(process.execPath, [...(opts.nodeArgs ?? []), BIN, 'serve'], {
      cwd: REPO,
      env: { ...process.env, DOMICILE_HOST: '127.0.0.1', DOMICILE_PORT: String(port), DOMICILE_DATA_DIR: dataDir, DOMICILE_WORKERS: '2', ...tlsEnv, ...opts.env },
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
        const res = await testRequest(`${url}/readyz`, { timeoutMs: 2000, ...(ca ? { ca } : {}) });
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
    pid: () => (child && child.exitCode === null ? child.pid : undefined),
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
      const res = await testRequest(`${url}${route}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
        ...(ca ? { ca } : {}),
      });
      let parsed: unknown = res.text;
      try { parsed = JSON.parse(res.text); } catch { /* not JSON */ }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async dispose() {
      await server.kill();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}
