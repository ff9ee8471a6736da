// Descriptors of live shard files (live-file.ts): closing one drops the
// process's SQLite locks on the file, so readers outside SQLite borrow the
// pool's (`ShardPool.borrowLiveFile`), which closes it only once it is given
// back and no worker has the tenant's handle open. "Locked" is checked from another process, which is
// what the locks keep out: it opens the file in `locking_mode=EXCLUSIVE` and
// tries to write.
import { closeSync, copyFileSync, fstatSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { exclusiveWriteFromAnotherProcess } from '@domicile/testkit';
import { copyFromDescriptor } from './live-file.ts';
import { ShardPool } from './shard-pool.ts';
import { shardPath } from './shard-path.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'domicile-live-file-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const BETTER_SQLITE3 = createRequire(import.meta.url).resolve('better-sqlite3');
const exclusiveWrite = (path: string) => exclusiveWriteFromAnotherProcess(path, BETTER_SQLITE3);

/** A WAL database with a row, open in this process (its connection holds SQLite's shared lock). */
function liveDatabase(dir: string): { path: string; db: Database.Database } {
  const path = join(dir, 'live.db');
  const db = new Database(path);
  cleanups.push(() => { db.close(); });
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)');
  return { path, db };
}

const isOpen = (fd: number): boolean => {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
};

describe('descriptors of a live database file', () => {
  it('closing any descriptor of the file drops the SQLite locks of this process (the premise)', () => {
    const { path } = liveDatabase(scratch());
    expect(exclusiveWrite(path)).toBe('locked');
    closeSync(openSync(path, 'r'));
    expect(exclusiveWrite(path)).toBe('wrote');
  });

  it('copyFileSync drops them too; copyFromDescriptor copies the same bytes and keeps them', () => {
    const dir = scratch();
    const { path } = liveDatabase(dir);
    const fd = openSync(path, 'r');
    copyFromDescriptor(fd, join(dir, 'copy.db'));
    expect(isOpen(fd)).toBe(true);
    expect(exclusiveWrite(path)).toBe('locked');

    // (readFileSync of the live file would drop them as well: it opens and closes a descriptor.)
    copyFileSync(path, join(dir, 'copy2.db'));
    expect(exclusiveWrite(path)).toBe('wrote');
    expect(readFileSync(join(dir, 'copy.db'))).toEqual(readFileSync(join(dir, 'copy2.db')));
    closeSync(fd);
  });

  it('copies a file larger than one read (1 MiB) whole, from its start', () => {
    const dir = scratch();
    const src = join(dir, 'big');
    const bytes = Buffer.alloc(2.5 * (1 << 20));
    for (let i = 0; i < bytes.length; i += 4096) bytes.writeUInt32BE(i, i);
    writeFileSync(src, bytes);
    const fd = openSync(src, 'r');
    try {
      copyFromDescriptor(fd, join(dir, 'big-copy'));
      expect(readFileSync(join(dir, 'big-copy')).equals(bytes)).toBe(true);
    } finally {
      closeSync(fd);
    }
  });
});

describe('ShardPool.borrowLiveFile', () => {
  async function pool(dir: string, maxOpenShards = 4) {
    const p = new ShardPool({ workers: 1, maxOpenShards, statementTimeoutMs: 5000, maxResultBytes: 1 << 20, maxDbBytes: 1 << 26, replication: true });
    cleanups.push(() => p.close());
    await p.start();
    return p;
  }
  const tenantIn = (dir: string, tenant: string) => ({ tenant, incarnation: 'inc', path: shardPath(dir, tenant), epoch: 1 });
  /** A pool on a fresh dir with tenant `acme` created and a table `t` in it. */
  async function poolWithAcme(maxOpenShards = 4) {
    const dir = scratch();
    const p = await pool(dir, maxOpenShards);
    const a = tenantIn(dir, 'acme');
    await p.create(a);
    await p.query(a, { sql: 'CREATE TABLE t (x)' });
    return { dir, p, a };
  }
  const openFds = () => readdirSync('/proc/self/fd').length;

  it('lends one descriptor per file, kept while a worker has the tenant open (the locks stay), closed once the handle is gone', async () => {
    const dir = scratch();
    const p = await pool(dir, 1);
    const a = tenantIn(dir, 'acme');
    const b = tenantIn(dir, 'bolt');
    await p.create(a);
    await p.create(b);
    await p.query(a, { sql: 'CREATE TABLE t (x)' });
    expect(exclusiveWrite(a.path)).toBe('locked');

    const fd = p.borrowLiveFile(a);
    expect(p.borrowLiveFile(a)).toBe(fd);
    p.returnLiveFile(fd);
    p.returnLiveFile(fd);
    expect(isOpen(fd)).toBe(true);
    expect(exclusiveWrite(a.path)).toBe('locked');

    // One open handle per worker: a request for another tenant evicts acme's, and the pool then forgets acme.
    await p.query(b, { sql: 'SELECT 1' });
    await p.query(b, { sql: 'SELECT 1' }); // the worker's report of the eviction arrives with an answer
    expect(isOpen(fd)).toBe(false);
  });

  it('closes a given-back descriptor at once when no worker has the tenant open; one still borrowed, when given back', async () => {
    const dir = scratch();
    const p = await pool(dir);
    writeFileSync(join(dir, 'plain'), 'x');
    const idle = p.borrowLiveFile({ tenant: 'nobody', path: join(dir, 'plain') });
    const again = p.borrowLiveFile({ tenant: 'nobody', path: join(dir, 'plain') });
    expect(again).toBe(idle);
    p.returnLiveFile(idle);
    expect(isOpen(idle)).toBe(true); // still lent once
    p.returnLiveFile(again);
    expect(isOpen(idle)).toBe(false);
    expect(() => p.borrowLiveFile({ tenant: 'nobody', path: join(dir, 'missing') })).toThrow(/ENOENT/);
  });

  it('closes every descriptor nobody borrows at close, and the others when given back', async () => {
    const dir = scratch();
    const p = await pool(dir);
    const a = tenantIn(dir, 'acme');
    const b = tenantIn(dir, 'bolt');
    for (const r of [a, b]) {
      await p.create(r);
      await p.query(r, { sql: 'CREATE TABLE t (x)' });
    }
    const returned = p.borrowLiveFile(a);
    p.returnLiveFile(returned);
    const lent = p.borrowLiveFile(b);
    expect(isOpen(returned)).toBe(true);
    await p.close();
    expect(isOpen(returned)).toBe(false);
    expect(isOpen(lent)).toBe(true);
    p.returnLiveFile(lent);
    expect(isOpen(lent)).toBe(false);
  });

  it('a file replaced under its path (restore in place) gets a new descriptor; the old one closes once given back', async () => {
    const { p, a } = await poolWithAcme();
    const old = p.borrowLiveFile(a);
    await p.exclusive(a, async () => {
      copyFileSync(a.path, `${a.path}.new`);
      renameSync(`${a.path}.new`, a.path);
    });
    const fresh = p.borrowLiveFile(a);
    expect(fresh).not.toBe(old);
    expect(fstatSync(fresh).ino).toBe(statSync(a.path).ino);
    p.returnLiveFile(old);
    expect(isOpen(old)).toBe(false);
    p.returnLiveFile(fresh);
    await p.query(a, { sql: 'SELECT 1' });
    expect(isOpen(fresh)).toBe(true); // the tenant is open on a worker
  });

  it('snapshot copies (maintenance) keep the locks and open no descriptor per copy', async () => {
    const { dir, p, a } = await poolWithAcme();
    await p.query(a, { sql: 'INSERT INTO t VALUES (1)' });
    const res = await p.maintenance(a, { op: 'snapshot-copy', dest: join(dir, 'copy.db') });
    expect(res.copied).toBe(true);
    const before = openFds();
    for (let i = 0; i < 20; i++) {
      await p.query(a, { sql: 'INSERT INTO t VALUES (?)', params: [i] });
      expect((await p.maintenance(a, { op: 'snapshot-copy', dest: join(dir, 'copy.db') })).copied).toBe(true);
    }
    expect(openFds() - before).toBeLessThan(3);
    expect(exclusiveWrite(a.path)).toBe('locked');
    await p.close();
    expect(readFileSync(join(dir, 'copy.db'))).toEqual(readFileSync(a.path));
  });
});
