/**
 * The end of a restore off the event loop (DESIGN §7: SQLite never runs on
 * the main thread of a node): a short-lived worker thread opens the rebuilt
 * file, runs `PRAGMA integrity_check`, checks `_domicile_meta.txid`, and may
 * then rewrite Domicile's own rows in one transaction — the txid of a restore
 * in place (txids never reset, DESIGN §1), or the identity of a fork. It is
 * plain JavaScript (no TypeScript loader needed in the worker); errors come
 * back as BACKUP_INVALID (a file that fails the checks) or INTERNAL.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { DomicileError } from '@domicile/errors';
import { backupInvalid } from './binary.ts';

/** Domicile's own rows to set once the file passed the checks. */
export interface RestoreFinish {
  /** New `_domicile_meta.txid`. */
  txid?: number;
  /** A fork: the new tenant's identity (epoch included). */
  identity?: { tenant: string; incarnation: string; epoch: number };
  /** Forget recorded Idempotency-Key answers (a fork is another tenant). */
  clearIdempotency?: boolean;
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const { path, txid, finish } = workerData;
let db;
try {
  db = new Database(path, { fileMustExist: true });
  db.pragma('mmap_size = ' + Math.min(require('node:fs').statSync(path).size, 1 << 30));
  const rows = db.prepare('PRAGMA integrity_check').pluck().all();
  if (rows.length !== 1 || rows[0] !== 'ok') {
    parentPort.postMessage({ invalid: 'Restored database fails integrity_check: ' + rows.slice(0, 3).join('; ') + '.' });
  } else {
    const hasMeta = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = '_domicile_meta'").get();
    const meta = hasMeta ? db.prepare('SELECT txid FROM _domicile_meta WHERE id = 1').pluck().get() : undefined;
    if (hasMeta && meta !== txid) {
      parentPort.postMessage({ invalid: 'Restored database records txid ' + String(meta) + ', the backup says ' + txid + '.' });
    } else {
      if (finish && hasMeta) {
        db.pragma('mmap_size = 0');
        db.transaction(() => {
          if (finish.txid !== undefined) db.prepare('UPDATE _domicile_meta SET txid = ? WHERE id = 1').run(finish.txid);
          if (finish.identity) db.prepare('UPDATE _domicile_meta SET tenant = ?, incarnation = ?, epoch = ? WHERE id = 1').run(finish.identity.tenant, finish.identity.incarnation, finish.identity.epoch);
          if (finish.clearIdempotency && db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = '_domicile_idempotency'").get()) db.prepare('DELETE FROM _domicile_idempotency').run();
        })();
        // Fold the rewrite into the file itself: the caller moves only the database file.
        const ck = db.pragma('wal_checkpoint(TRUNCATE)')[0];
        if (ck.busy !== 0) throw new Error('checkpoint after the rewrite was busy');
      }
      parentPort.postMessage({ ok: true });
    }
  }
} catch (err) {
  parentPort.postMessage({ error: String(err && err.message || err) });
} finally {
  // Closing the last connection checkpoints the rewrite and removes the -wal: the file stands alone.
  if (db) db.close();
}
`;

let sqliteEntry: string | undefined;

/** Verify a rebuilt database in a worker thread and apply `finish`; see the module comment. */
export function verifyDatabaseInWorker(path: string, txid: number, finish?: RestoreFinish): Promise<void> {
  sqliteEntry ??= createRequire(import.meta.url).resolve('better-sqlite3');
  return new Promise<void>((resolve, reject) => {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { sqlite: sqliteEntry, path, txid, finish }, name: 'domicile-restore-verify' });
    let settled = false;
    w.once('message', (m: { ok?: true; invalid?: string; error?: string }) => {
      settled = true;
      if (m.ok) resolve();
      else if (m.invalid !== undefined) reject(backupInvalid(m.invalid));
      else reject(backupInvalid('Restored database cannot be opened by SQLite.', { reason: m.error }));
    });
    w.once('error', (err) => { if (!settled) { settled = true; reject(new DomicileError('INTERNAL', 'restore verification worker failed', {}, { cause: err })); } });
    w.once('exit', (code) => { if (!settled) { settled = true; reject(new DomicileError('INTERNAL', `restore verification worker exited (${code})`)); } });
  });
}
