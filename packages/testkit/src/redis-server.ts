import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net, { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeTestCertificate } from './domicile-server.ts';

/** Options of {@link startRedisServer}. */
export interface StartRedisServerOptions {
  /** `requirepass`: clients must AUTH with it (the URL carries it). Default: none. */
  password?: string;
  /**
   * Keep data across {@link RedisServer.restart} and {@link RedisServer.kill} with an append-only
   * file fsynced on every write. Default false: nothing is written to disk.
   */
  persistence?: boolean;
  /**
   * Serve TLS only (`rediss://`), with a self-signed certificate for 127.0.0.1 made by the
   * `openssl` command; clients trust {@link RedisServer.ca}. Default false.
   */
  tls?: boolean;
  /** How long to wait for the server to accept connections. Default 10000 ms. */
  startTimeoutMs?: number;
  /** Path of the binary. Default `redis-server` from PATH (Debian's package; see .ci/setup-system.sh). */
  binary?: string;
}

/** A running `redis-server` child process; see {@link startRedisServer}. */
export interface RedisServer {
  /** `redis://127.0.0.1:<port>` (`rediss://` with `tls`), with `:<password>@` when a password is set. */
  readonly url: string;
  /** With `tls`: the PEM certificate the server presents (self-signed: trust it as the CA). */
  readonly ca: string | undefined;
  /** Port on 127.0.0.1; stays the same across {@link RedisServer.restart}. */
  readonly port: number;
  /** Working directory of the server (append-only file when persistent); removed by {@link RedisServer.stop}. */
  readonly dir: string;
  /** Process id of the current child, or undefined while it is down. */
  readonly pid: number | undefined;
  /** Terminate the server (SIGTERM, then SIGKILL after 3 s) and remove its directory. Idempotent. */
  stop(): Promise<void>;
  /** kill -9 the server, keeping its directory (with `persistence`, a restart brings the data back). */
  kill(): Promise<void>;
  /** SIGSTOP: the process stays, its sockets stay open, nothing is answered. */
  pause(): void;
  /** SIGCONT after {@link RedisServer.pause}. */
  resume(): void;
  /** Stop the server if it runs and start it again on the same port and directory. */
  restart(): Promise<void>;
}

const READY = /Ready to accept connections/;
const ADDR_IN_USE = /Address already in use|bind: /i;

const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;

/** Last resort: never leave a server or its files behind when the test process exits. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/**
 * Start the system's `redis-server` on a free port of 127.0.0.1 with a fresh temp directory, no
 * persistence unless asked, and resolve once it accepts connections. Every server must be stopped
 * by the test that started it; an 'exit' hook kills leftovers as a last resort.
 */
export async function startRedisServer(opts: StartRedisServerOptions = {}): Promise<RedisServer> {
  installExitHook();
  const timeoutMs = opts.startTimeoutMs ?? 10_000;
  const dir = mkdtempSync(path.join(tmpdir(), 'domicile-redis-'));
  liveDirs.add(dir);
  let child: ChildProcess | undefined;
  let port = 0;
  let stopped = false;
  let ca: string | undefined;

  try {
    if (opts.tls) ca = makeCertificate(dir);
    // redis-server cannot listen on port 0, so a free port is picked first; another process may
    // take it in between, hence the retry on "address in use".
    for (let attempt = 0; ; attempt++) {
      port = await freePort();
      try {
        child = await spawnServer(port, dir, opts, timeoutMs);
        break;
      } catch (err) {
        if (!(err as { addrInUse?: boolean }).addrInUse || attempt >= 5) throw err;
      }
    }
  } catch (err) {
    liveDirs.delete(dir);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  const terminate = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c) return;
    await killAndWait(c, signal);
  };
  const auth = opts.password === undefined ? '' : `:${encodeURIComponent(opts.password)}@`;

  return {
    url: `${opts.tls ? 'rediss' : 'redis'}://${auth}127.0.0.1:${port}`,
    ca,
    port,
    dir,
    get pid() {
      return child?.pid;
    },
    async stop() {
      stopped = true;
      await terminate('SIGTERM');
      liveDirs.delete(dir);
      await rm(dir, { recursive: true, force: true });
    },
    async kill() {
      await terminate('SIGKILL');
    },
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
    async restart() {
      if (stopped) throw new Error('redis-server was stopped (its directory is gone); start a new one');
      await terminate('SIGTERM');
      // The port was ours a moment ago; retry briefly in case the kernel still holds it.
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          child = await spawnServer(port, dir, opts, Math.max(1000, deadline - Date.now()));
          return;
        } catch (err) {
          if (!(err as { addrInUse?: boolean }).addrInUse || Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
  };
}

/** Writes a self-signed certificate for 127.0.0.1 (cert.pem, key.pem) into `dir`; returns the certificate. */
function makeCertificate(dir: string): string {
  return readFileSync(makeTestCertificate(dir).certFile, 'utf8');
}

/** A port that was free on 127.0.0.1 a moment ago. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function spawnServer(port: number, dir: string, opts: StartRedisServerOptions, timeoutMs: number): Promise<ChildProcess> {
  const listen = opts.tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', path.join(dir, 'cert.pem'),
      '--tls-key-file', path.join(dir, 'key.pem'), '--tls-auth-clients', 'no']
    : ['--port', String(port)];
  const args = [
    '--bind', '127.0.0.1', ...listen, '--dir', dir,
    '--daemonize', 'no', '--logfile', '', '--loglevel', 'notice', '--protected-mode', 'no',
    '--save', '',
    ...(opts.persistence ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
    ...(opts.password === undefined ? [] : ['--requirepass', opts.password]),
  ];
  const child = spawn(opts.binary ?? 'redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));

  let out = '';
  const collect = (d: string): void => {
    if (out.length < 16_000) out += d;
  };
  child.stdout!.setEncoding('utf8').on('data', collect);
  child.stderr!.setEncoding('utf8').on('data', collect);

  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start within ${timeoutMs} ms: ${out.trim()}`)), timeoutMs);
      const onData = (): void => {
        if (!READY.test(out)) return;
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve();
      };
      const onExit = (code: number | null, signal: string | null): void => {
        clearTimeout(timer);
        reject(Object.assign(new Error(`redis-server exited before listening (code ${code}, signal ${signal}): ${out.trim()}`), {
          addrInUse: ADDR_IN_USE.test(out),
        }));
      };
      const onError = (err: Error): void => {
        clearTimeout(timer);
        reject(new Error(`redis-server could not be started (is it installed? see .ci/setup-system.sh): ${err.message}`, { cause: err }));
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', onExit);
      child.once('error', onError);
    });
    // Do not keep the test process alive for the server's sake.
    child.unref();
    (child.stdout as Socket | null)?.unref();
    (child.stderr as Socket | null)?.unref();
    return child;
  } catch (err) {
    await killAndWait(child, 'SIGKILL');
    throw err;
  }
}

/** Send `signal` (and SIGCONT, in case the process is paused) and wait for the exit; SIGKILL after 3 s. */
async function killAndWait(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  child.kill('SIGCONT');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}
