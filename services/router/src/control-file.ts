import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

/**
 * Opens one of the node's own SQLite files (audit log, schema store): WAL with synchronous=NORMAL,
 * so their one-row writes on the event loop never fsync per commit. Tenant SQL never runs here.
 */
export function openControlFile(file: string): InstanceType<typeof Database> {
  mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  return db;
}
