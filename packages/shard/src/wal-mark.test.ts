// walChangedSince against real SQLite logs: appended frames, logs restarted
// in place by `wal_checkpoint(RESTART)` (stale frames stay in the file),
// truncated logs, and files too short to tell.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { walChangedSince, type WalMark } from './wal-mark.ts';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

function open() {
  const dir = mkdtempSync(join(tmpdir(), 'domicile-wal-mark-'));
  dirs.push(dir);
  const path = join(dir, 't.db');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE t (x)');
  const insert = db.prepare('INSERT INTO t VALUES (?)');
  return { db, wal: `${path}-wal`, write: (n = 1) => { for (let i = 0; i < n; i++) insert.run(i); } };
}

/** The mark a shipper that read the whole log would hold: the header's salts, the end of the frames with those salts. */
function markAtEnd(wal: string): WalMark {
  const b = readFileSync(wal);
  const salt1 = b.readUInt32BE(16);
  const salt2 = b.readUInt32BE(20);
  const frameSize = 24 + b.readUInt32BE(8);
  let offset = 32;
  while (offset + frameSize <= b.byteLength && b.readUInt32BE(offset + 8) === salt1 && b.readUInt32BE(offset + 12) === salt2) offset += frameSize;
  return { salt1, salt2, offset };
}

describe('walChangedSince', () => {
  it('is false at the end of the log and true once a commit appends frames', () => {
    const { db, wal, write } = open();
    write(3);
    const mark = markAtEnd(wal);
    expect(walChangedSince(wal, mark)).toBe(false);
    write();
    expect(walChangedSince(wal, mark)).toBe(true);
    expect(walChangedSince(wal, markAtEnd(wal))).toBe(false);
    db.close();
  });

  it('sees a write after a RESTART checkpoint, although the file keeps its size', () => {
    const { db, wal, write } = open();
    write(20);
    const mark = markAtEnd(wal);
    const row = db.pragma('wal_checkpoint(RESTART)') as Array<{ busy: number }>;
    expect(row[0]!.busy).toBe(0);
    // The log is folded, not yet restarted: nothing new.
    expect(statSync(wal).size).toBe(mark.offset);
    expect(walChangedSince(wal, mark)).toBe(false);
    write(); // restarts the log at its start, with new salts, over the old frames
    expect(statSync(wal).size).toBe(mark.offset);
    expect(walChangedSince(wal, mark)).toBe(true);
    // A mark of the new log: nothing after it, though the old log's frames follow in the file.
    const fresh = markAtEnd(wal);
    expect(fresh.salt1).not.toBe(mark.salt1);
    expect(fresh.offset).toBeLessThan(mark.offset);
    expect(readFileSync(wal).readUInt32BE(fresh.offset + 8)).toBe(mark.salt1); // a stale frame of the old log sits there
    expect(walChangedSince(wal, fresh)).toBe(false);
    write();
    expect(walChangedSince(wal, fresh)).toBe(true);
    db.close();
  });

  it('sees a write after a TRUNCATE checkpoint, and calls an empty or missing log changed', () => {
    const { db, wal, write } = open();
    write(5);
    const mark = markAtEnd(wal);
    db.pragma('wal_checkpoint(TRUNCATE)');
    expect(statSync(wal).size).toBe(0);
    expect(walChangedSince(wal, mark)).toBe(true); // no header to compare: the check cannot tell, so it says changed
    write();
    expect(walChangedSince(wal, mark)).toBe(true);
    expect(walChangedSince(`${wal}.missing`, mark)).toBe(true);
    db.close();
  });

  it('calls a mark before the first frame changed (it cannot point into a log)', () => {
    const { db, wal, write } = open();
    write();
    const m = markAtEnd(wal);
    expect(walChangedSince(wal, { ...m, offset: 0 })).toBe(true);
    db.close();
  });
});
