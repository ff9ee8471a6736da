/**
 * The last step of an online restore: Domicile's own rows of a restored file
 * rewritten in one trusted transaction (plain better-sqlite3; the file is
 * Domicile's own, not tenant SQL) — the txid of a restore in place (txids
 * never reset, DESIGN §1), or the identity of a fork. Synchronous: it runs on
 * a restore worker thread, never on a node's event loop (DESIGN §7).
 */
import { statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { DomicileError } from '@domicile/errors';
import { backupInvalid } from './binary.ts';

/** Domicile's own rows to set on a restored file (it already passed every check). */
export interface RestoreFinish {
  /** New `_domicile_meta.txid`, at least; see `txidAbove`. */
  txid?: number;
  /**
   * A restore in place: the tenant's live file (its `-wal` included). The new
   * txid is raised above the txid it records, so a write committed while the
   * restore ran (after the tenant's history was listed) never shares a txid
   * with the restored state.
   */
  txidAbove?: string;
  /** A fork: the new tenant's identity (epoch included). */
  identity?: { tenant: string; incarnation: string; epoch: number };
  /** Forget recorded Idempotency-Key answers (a fork is another tenant). */
  clearIdempotency?: boolean;
}

const hasTable = (db: Database.Database, name: string): boolean =>
  db.prepare("SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?").get(name) !== undefined;

/** `_domicile_meta.txid` of a live shard file, or undefined when it has none. */
export function readShardTxid(path: string): number | undefined {
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { fileMustExist: true });
    if (!hasTable(db, '_domicile_meta')) return undefined;
    return db.prepare('SELECT txid FROM main._domicile_meta WHERE id = 1').pluck().get() as number | undefined;
  } finally {
    db?.close();
  }
}

/**
 * Apply `finish` to the restored file at `path` and fold the change into the
 * file itself (checkpoint, then close: no `-wal` is left, the caller moves
 * only the database file). Returns the file's txid afterwards.
 */
export function finishRestoredFile(path: string, finish: RestoreFinish): { txid: number } {
  statSync(path); // ENOENT here, not a fresh empty database below
  const above = finish.txidAbove === undefined ? undefined : readShardTxid(finish.txidAbove);
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { fileMustExist: true });
    if (!hasTable(db, '_domicile_meta')) throw backupInvalid('Restored database has no _domicile_meta table: not a Domicile shard.');
    const current = db.prepare('SELECT txid FROM main._domicile_meta WHERE id = 1').pluck().get() as number | undefined;
    if (current === undefined) throw backupInvalid('Restored database has an empty _domicile_meta table.');
    let txid = current;
    if (finish.txid !== undefined) txid = Math.max(finish.txid, above === undefined ? 0 : above + 1);
    const conn = db;
    conn.transaction(() => {
      if (txid !== current) conn.prepare('UPDATE main._domicile_meta SET txid = ? WHERE id = 1').run(txid);
      if (finish.identity) {
        const { tenant, incarnation, epoch } = finish.identity;
        conn.prepare('UPDATE main._domicile_meta SET tenant = ?, incarnation = ?, epoch = ? WHERE id = 1').run(tenant, incarnation, epoch);
      }
      if (finish.clearIdempotency && hasTable(conn, '_domicile_idempotency')) conn.prepare('DELETE FROM main._domicile_idempotency').run();
    })();
    const ck = db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>;
    if (ck[0] && ck[0].busy !== 0) throw new DomicileError('INTERNAL', 'checkpoint of the restored file was busy');
    return { txid };
  } finally {
    // Closing the last connection checkpoints and removes the -wal: the file stands alone.
    db?.close();
  }
}
