import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Credentials s3rver accepts out of the box. */
export const S3RVER_CREDENTIALS = Object.freeze({ accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' });

/** Options of {@link startS3Server}. */
export interface StartS3ServerOptions {
  /** Buckets created before the server answers (again on every restart; existing contents are kept). */
  buckets: string[];
  /** How long to wait for the server to answer. Default 15000 ms. */
  startTimeoutMs?: number;
}

/** A running s3rver child process; see {@link startS3Server}. */
export interface S3Server {
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** Port on 127.0.0.1; stays the same across {@link S3Server.restart}. */
  readonly port: number;
  /** Data directory of the server (objects on disk); removed by {@link S3Server.stop}. */
  readonly dir: string;
  /** Process id of the current child, or undefined while it is down. */
  readonly pid: number | undefined;
  /** Credentials to sign requests with (s3rver's defaults). */
  readonly credentials: { accessKeyId: string; secretAccessKey: string };
  /** Region to sign requests for (s3rver accepts any). */
  readonly region: string;
  /** `s3://<bucket>/<prefix>?endpoint=...&region=...&forcePathStyle=true` for a Domicile bucket URL. */
  bucketUrl(bucket: string, prefix?: string): string;
  /** Terminate the server (SIGTERM, then SIGKILL after 3 s) and remove its directory. Idempotent. */
  stop(): Promise<void>;
  /** kill -9 the server, keeping its directory so that {@link S3Server.restart} brings the data back. */
  kill(): Promise<void>;
  /** Stop the server if it runs and start it again on the same port and directory. */
  restart(): Promise<void>;
}

const CHILD = fileURLToPath(new URL('./s3rver-child.mjs', import.meta.url));
const LISTENING = /^S3RVER_LISTENING (\d+)$/m;
/** Exit code of the child when the port is taken (see s3rver-child.mjs). */
const EXIT_ADDR_IN_USE = 3;

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
 * Start s3rver 3.7.1 as a child process (so that fault tests can kill -9 it) on
 * a free port of 127.0.0.1 with a fresh temp directory, create `buckets`, and
 * resolve once it answers HTTP. The child also exits when this process does
 * (its IPC channel closes), and an 'exit' hook kills it as a last resort.
 */
export async function startS3Server(opts: StartS3ServerOptions): Promise<S3Server> {
  installExitHook();
  const timeoutMs = opts.startTimeoutMs ?? 15_000;
  const buckets = [...opts.buckets];
  const dir = mkdtempSync(path.join(tmpdir(), 'domicile-s3rver-'));
  liveDirs.add(dir);
  let child: ChildProcess | undefined;
  let port = 0;
  let stopped = false;

  try {
    ({ child, port } = await spawnServer(0, dir, buckets, timeoutMs));
  } catch (err) {
    liveDirs.delete(dir);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `http://127.0.0.1:${port}`;

  const terminate = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c) return;
    await killAndWait(c, signal);
  };

  const server: S3Server = {
    endpoint,
    port,
    dir,
    get pid() {
      return child?.pid;
    },
    credentials: S3RVER_CREDENTIALS,
    region: 'us-east-1',
    bucketUrl(bucket, prefix = '') {
      const q = new URLSearchParams({ endpoint, region: 'us-east-1', forcePathStyle: 'true' });
      return `s3://${bucket}/${prefix}?${q.toString()}`;
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
    async restart() {
      if (stopped) throw new Error('s3rver was stopped (its directory is gone); start a new one');
      await terminate('SIGTERM');
      // The port was ours a moment ago; retry briefly in case the kernel holds it.
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          ({ child } = await spawnServer(port, dir, buckets, Math.max(1000, deadline - Date.now())));
          return;
        } catch (err) {
          if ((err as { exitCode?: number }).exitCode !== EXIT_ADDR_IN_USE || Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
  };
  return server;
}

async function spawnServer(
  port: number,
  dir: string,
  buckets: string[],
  timeoutMs: number,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--openssl-legacy-provider', CHILD], {
    env: {
      ...process.env,
      S3RVER_PORT: String(port),
      S3RVER_DIR: dir,
      S3RVER_BUCKETS: buckets.join(','),
    },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));

  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d.slice(0, 4000)));

  try {
    const actualPort = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`s3rver did not start within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
      const onData = (): void => {
        const m = LISTENING.exec(stdout);
        if (!m) return;
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve(Number(m[1]));
      };
      const onExit = (code: number | null, signal: string | null): void => {
        clearTimeout(timer);
        reject(
          Object.assign(new Error(`s3rver exited before listening (code ${code}, signal ${signal}): ${stderr.trim()}`), {
            exitCode: code,
          }),
        );
      };
      child.stdout!.on('data', onData);
      child.once('exit', onExit);
    });
    await waitUntilAnswers(actualPort, timeoutMs);
    // Do not keep the test process alive for the server's sake.
    child.unref();
    child.channel?.unref();
    (child.stdout as Socket | null)?.unref();
    (child.stderr as Socket | null)?.unref();
    return { child, port: actualPort };
  } catch (err) {
    await killAndWait(child, 'SIGKILL');
    throw err;
  }
}

async function waitUntilAnswers(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 1000 }, (res) => {
        res.resume();
        resolve(true);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => req.destroy());
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`s3rver on port ${port} does not answer`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Send `signal` and wait for the exit; escalate to SIGKILL after 3 s. */
async function killAndWait(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}
