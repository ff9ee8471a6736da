import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { finishRestoredFile, readShardTxid } from './restore-finish.ts';

describe('finishRestoredFile', () => {
  let dir: string;

  const open: Database.Database[] = [];
  afterEach(() => {
    for (const db of open.splice(0)) db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A shard-like file; `live`: its connection stays open, so its last commits are only in the -wal. */
  function shard(name: string, txid: number, idempotency = 0, live = false): string {
    const file = path.join(dir, name);
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec(`CREATE TABLE _domicile_meta (id INTEGER PRIMARY KEY, tenant TEXT, incarnation TEXT, epoch INTEGER, txid INTEGER);
      CREATE TABLE _domicile_idempotency (key TEXT PRIMARY KEY); CREATE TABLE kv (k INTEGER PRIMARY KEY);`);
    db.prepare('INSERT INTO _domicile_meta VALUES (1, ?, ?, 3, ?)').run('acme', 'inc-a', txid);
    for (let i = 0; i < idempotency; i++) db.prepare('INSERT INTO _domicile_idempotency VALUES (?)').run(`k${i}`);
    if (live) open.push(db); else db.close();
    return file;
  }
  const meta = (file: string) => {
    const db = new Database(file, { readonly: true });
    try {
      return { ...(db.prepare('SELECT tenant, incarnation, epoch, txid FROM _domicile_meta').get() as object), keys: db.prepare('SELECT count(*) FROM _domicile_idempotency').pluck().get() };
    } finally { db.close(); }
  };

  it('sets the txid above both the given floor and the live file\'s own txid, and leaves no -wal behind', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'domicile-finish-'));
    const live = shard('live.db', 40, 0, true);
    expect(existsSync(`${live}-wal`)).toBe(true);
    const restored = shard('restored.db', 7, 2);
    expect(readShardTxid(live)).toBe(40);
    expect(finishRestoredFile(restored, { txid: 31, txidAbove: live })).toEqual({ txid: 41 });
    expect(meta(restored)).toMatchObject({ tenant: 'acme', epoch: 3, txid: 41, keys: 2 });
    expect(finishRestoredFile(restored, { txid: 90, txidAbove: live })).toEqual({ txid: 90 });
    expect(existsSync(`${restored}-wal`)).toBe(false);
  });

  it('rewrites a fork\'s identity and forgets its idempotency records, keeping the txid', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'domicile-finish-'));
    const restored = shard('fork.db', 12, 3);
    expect(finishRestoredFile(restored, { identity: { tenant: 'acme-copy', incarnation: 'inc-b', epoch: 1 }, clearIdempotency: true })).toEqual({ txid: 12 });
    expect(meta(restored)).toEqual({ tenant: 'acme-copy', incarnation: 'inc-b', epoch: 1, txid: 12, keys: 0 });
  });

  it('refuses a file that is not a Domicile shard with BACKUP_INVALID', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'domicile-finish-'));
    const plain = path.join(dir, 'plain.db');
    new Database(plain).exec('CREATE TABLE t (x)');
    expect(() => finishRestoredFile(plain, { txid: 5 })).toThrow(expect.objectContaining({ code: 'BACKUP_INVALID' }));
  });
});
