/**
 * Helpers for this package's tests: Domicile-shaped SQLite files (WAL mode,
 * `wal_autocheckpoint=0`, a `_domicile_meta` row bumped once per write
 * transaction as `@domicile/shard` does) and table dumps for comparisons.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { ObjectStore } from '@domicile/object-store';
import { snapshotKey, type GenerationRef } from './keys.ts';
import { createSnapshot } from './snapshot.ts';
import { WalShipper } from './wal-shipper.ts';

/** A fresh temp directory and its removal. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'domicile-repl-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A shard-like database: the connection and a write helper that bumps the txid. */
export interface TestShard {
  db: Database.Database;
  path: string;
  /** Run `fn` in BEGIN IMMEDIATE … bump txid … COMMIT. */
  write(fn: (db: Database.Database) => void): void;
  txid(): number;
  checkpoint(): { busy: number; log: number; checkpointed: number };
}

/** Create a shard file as `@domicile/shard`'s createShard would (same meta table). */
export function createTestShard(path: string, tenant: string, incarnation: string, opts: { pageSize?: number } = {}): TestShard {
  const db = new Database(path);
  if (opts.pageSize) db.pragma(`page_size = ${opts.pageSize}`);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec(`CREATE TABLE _domicile_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    tenant TEXT NOT NULL,
    incarnation TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    txid INTEGER NOT NULL,
    format INTEGER NOT NULL,
    created_at TEXT NOT NULL
  ) STRICT`);
  db.prepare('INSERT INTO _domicile_meta VALUES (1, ?, ?, 1, 0, 1, ?)').run(tenant, incarnation, new Date().toISOString());
  const bump = db.prepare('UPDATE _domicile_meta SET txid = txid + 1 WHERE id = 1');
  return {
    db,
    path,
    write(fn) {
      db.exec('BEGIN IMMEDIATE');
      try {
        fn(db);
        bump.run();
        db.exec('COMMIT');
      } catch (err) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw err;
      }
    },
    txid: () => db.prepare('SELECT txid FROM _domicile_meta').pluck().get() as number,
    checkpoint: () => (db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number; checkpointed: number }>)[0]!,
  };
}

/** Every user table's rows (and the meta txid), in a comparable form. */
export function dumpDatabase(path: string): Record<string, unknown[]> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const out: Record<string, unknown[]> = {};
    const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").pluck().all() as string[];
    for (const t of tables) {
      const cols = t === '_domicile_meta' ? 'tenant, incarnation, epoch, txid' : '*';
      out[t] = db.prepare(`SELECT ${cols} FROM "${t}" ORDER BY rowid`).raw(true).all();
    }
    out['__schema'] = db.prepare('SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name').raw(true).all();
    return out;
  } finally {
    db.close();
  }
}

/**
 * Begin a generation of `shard` as the replicator does: a complete
 * checkpoint, a shipper, the snapshot stored in `store`. Close the shipper.
 */
export async function beginTestGeneration(shard: TestShard, store: ObjectStore, ref: GenerationRef): Promise<WalShipper> {
  if (shard.checkpoint().busy !== 0) throw new Error('the checkpoint before the generation was busy');
  const shipper = WalShipper.beginGeneration({ dbPath: shard.path, ...ref });
  try {
    const snap = createSnapshot({ dbPath: shard.path, ...ref, checksum: shipper.checksum, pageHash: shipper.pageHash });
    await Promise.all([store.put(snapshotKey(ref, snap.header.txid), snap.stream, { ifNoneMatch: true }), snap.done]);
    return shipper;
  } catch (err) {
    shipper.close();
    throw err;
  }
}
