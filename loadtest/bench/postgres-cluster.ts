/**
 * A throwaway Postgres cluster for the peer baseline: Debian's postgresql
 * binaries, initdb into a temp dir, the postmaster on a free loopback port,
 * stopped and deleted at the end (and killed on process exit if the caller
 * never got that far). Postgres refuses to run as root, so as root it runs as
 * the `postgres` system user Debian's package creates (else `nobody`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '@domicile/testkit';

const PG_ROOT = '/usr/lib/postgresql';

/** A running throwaway cluster. */
export interface PostgresCluster {
  /** Loopback connection string (trust auth, database `postgres`). */
  readonly url: string;
  readonly version: string;
  /** The server settings it was started with (`-c` flags). */
  readonly settings: Readonly<Record<string, string>>;
  /** Fast shutdown, then delete the data dir. Idempotent. */
  stop(): Promise<void>;
}

/** The newest installed Postgres bin dir, or undefined when Debian's postgresql is not installed. */
export function findPostgres(): { bin: string; version: string } | undefined {
  if (!existsSync(PG_ROOT)) return undefined;
  const versions = readdirSync(PG_ROOT).filter((v) => existsSync(path.join(PG_ROOT, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  const v = versions[0];
  return v === undefined ? undefined : { bin: path.join(PG_ROOT, v, 'bin'), version: v };
}

function idOf(user: string): { uid: number; gid: number } | undefined {
  const u = spawnSync('id', ['-u', user], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', user], { encoding: 'utf8' });
  if (u.status !== 0 || g.status !== 0) return undefined;
  return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/** Starts a cluster with `settings` as `-c key=value` (e.g. synchronous_commit=off). Resolves when it accepts connections. */
export async function startPostgresCluster(settings: Record<string, string> = {}): Promise<PostgresCluster> {
  const found = findPostgres();
  if (!found) throw new Error(`postgresql is not installed (${PG_ROOT} is missing): apt-get install postgresql, or run .ci/setup-system.sh`);
  const owner = process.getuid?.() === 0 ? (idOf('postgres') ?? idOf('nobody')) : undefined;
  if (process.getuid?.() === 0 && !owner) throw new Error('running as root and neither the postgres nor the nobody user exists to run Postgres as');
  const as = owner ? { uid: owner.uid, gid: owner.gid } : {};

  const dir = mkdtempSync(path.join(tmpdir(), 'domicile-bench-pg-'));
  let child: ChildProcess | undefined;
  let out = '';
  const killNow = () => { child?.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); };
  process.once('exit', killNow);
  const cleanup = async () => {
    process.off('exit', killNow);
    const c = child;
    if (c && c.exitCode === null && c.signalCode === null) {
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      c.kill('SIGINT'); // fast shutdown: abort sessions, checkpoint, exit
      const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    if (owner) chownSync(dir, owner.uid, owner.gid);
    const data = path.join(dir, 'data');
    // --no-sync only skips initdb's own fsyncs of the template files; the server keeps fsync on.
    const init = spawnSync(path.join(found.bin, 'initdb'), ['-D', data, '-U', 'bench', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'], {
      cwd: dir, encoding: 'utf8', timeout: 60_000, ...as,
    });
    if (init.status !== 0) throw new Error(`initdb failed (${init.status ?? init.signal}): ${init.stderr || init.error?.message}`);

    const port = await freePort();
    const all = { listen_addresses: '127.0.0.1', unix_socket_directories: dir, fsync: 'on', logging_collector: 'off', ...settings };
    const args = ['-D', data, '-p', String(port), ...Object.entries(all).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    child = spawn(path.join(found.bin, 'postgres'), args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], ...as });
    const append = (d: Buffer) => { if (out.length < 64_000) out += d.toString(); };
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);

    const url = `postgres://bench@127.0.0.1:${port}/postgres`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`postgres exited with ${child.exitCode}:\n${out}`);
      const client = new pg.Client({ connectionString: url });
      try {
        await client.connect();
        await client.query('SELECT 1');
        await client.end();
        break;
      } catch {
        await client.end().catch(() => {});
      }
      if (Date.now() > deadline) throw new Error(`postgres did not accept connections within 30 s:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    let stopped: Promise<void> | undefined;
    return Object.freeze({ url, version: found.version, settings: Object.freeze({ ...all }), stop: () => (stopped ??= cleanup()) });
  } catch (err) {
    await cleanup();
    throw err;
  }
}
