import { closeSync, copyFileSync, openSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestShard, tempDir } from './test-support.ts';
import { parseWalHeader, positionAfter, ReadBuffer, readWal, walStartPosition, WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, WAL_MAGIC_BE, walChecksum } from './wal-reader.ts';

let cleanups: Array<() => void> = [];
afterEach(() => { for (const c of cleanups) c(); cleanups = []; });

function shardWithWal() {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  const path = join(dir, 't.db');
  const s = createTestShard(path, 'acme', 'inc-1');
  cleanups.unshift(() => s.db.open && s.db.close());
  s.write((db) => db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)'));
  return { dir, path, s };
}

/** Rewrite a little-endian WAL with big-endian checksums (magic 0x377f0683), as a big-endian machine would write it. */
function toBigEndianWal(le: Buffer): Buffer {
  const out = Buffer.from(le);
  out.writeUInt32BE(WAL_MAGIC_BE, 0);
  let [s1, s2] = walChecksum(out.subarray(0, 24), true, 0, 0);
  out.writeUInt32BE(s1, 24);
  out.writeUInt32BE(s2, 28);
  const ps = out.readUInt32BE(8);
  for (let at = WAL_HEADER_SIZE; at + WAL_FRAME_HEADER_SIZE + ps <= out.length; at += WAL_FRAME_HEADER_SIZE + ps) {
    [s1, s2] = walChecksum(out.subarray(at, at + 8), true, s1, s2);
    [s1, s2] = walChecksum(out.subarray(at + WAL_FRAME_HEADER_SIZE, at + WAL_FRAME_HEADER_SIZE + ps), true, s1, s2);
    out.writeUInt32BE(s1, at + 16);
    out.writeUInt32BE(s2, at + 20);
  }
  return out;
}

describe('readWal', () => {
  it('ends where positionAfter of its last commit frame says, and reads on from there', () => {
    const { path, s } = shardWithWal();
    for (let i = 0; i < 5; i++) s.write((db) => db.prepare('INSERT INTO t (v) VALUES (?)').run(`row ${i}`));
    const first = readWal(readFileSync(`${path}-wal`));
    if (first.kind !== 'frames') throw new Error(first.kind);
    expect(positionAfter(walStartPosition(first.header), first.frames.at(-1)!)).toEqual(first.position);
    s.write((db) => db.prepare('INSERT INTO t (v) VALUES (?)').run('one more'));
    const next = readWal(readFileSync(`${path}-wal`), positionAfter(walStartPosition(first.header), first.frames.at(-1)!));
    expect(next.kind === 'frames' && next.commits).toBe(1);
  });

  it('reads the same frames from a file through a reused ReadBuffer as from memory; the next read reuses the bytes', () => {
    const { path, s } = shardWithWal();
    for (let i = 0; i < 30; i++) s.write((db) => db.prepare('INSERT INTO t (v) VALUES (?)').run(`row ${i} ${'y'.repeat(i * 40)}`));
    const mem = readWal(readFileSync(`${path}-wal`));
    const into = new ReadBuffer(64 * 1024);
    const fd = openSync(`${path}-wal`, 'r');
    try {
      const viaFile = readWal(fd, undefined, into);
      if (mem.kind !== 'frames' || viaFile.kind !== 'frames') throw new Error('no frames');
      expect(viaFile.frames.length).toBe(mem.frames.length);
      expect(viaFile.commits).toBe(mem.commits);
      expect(viaFile.position).toEqual(mem.position);
      viaFile.frames.forEach((f, i) => {
        const m = mem.frames[i]!;
        expect([f.pgno, f.commitSize, f.offset, f.checksum1, f.checksum2]).toEqual([m.pgno, m.commitSize, m.offset, m.checksum1, m.checksum2]);
        expect(Buffer.from(f.data).equals(Buffer.from(m.data))).toBe(true);
      });
      // The frames are views into the ReadBuffer: the next read through it reuses the same bytes.
      const again = readWal(fd, undefined, into);
      if (again.kind !== 'frames') throw new Error(again.kind);
      expect(again.frames[0]!.data.buffer).toBe(viaFile.frames[0]!.data.buffer);
      // Without one, every read has a buffer of its own.
      const own = readWal(fd);
      if (own.kind !== 'frames') throw new Error(own.kind);
      expect(own.frames[0]!.data.buffer).not.toBe(viaFile.frames[0]!.data.buffer);
    } finally {
      closeSync(fd);
    }
  });

  it('after a RESTART checkpoint reads from a file only the new log, not the old frames behind it in the file', () => {
    const { path, s } = shardWithWal();
    for (let i = 0; i < 200; i++) s.write((db) => db.prepare('INSERT INTO t (v) VALUES (?)').run(`row ${i} ${'y'.repeat(1000)}`));
    expect((s.db.pragma('wal_checkpoint(RESTART)') as Array<{ busy: number }>)[0]!.busy).toBe(0);
    for (let i = 0; i < 3; i++) s.write((db) => db.prepare('INSERT INTO t (v) VALUES (?)').run(`new ${i}`));
    const file = readFileSync(`${path}-wal`);
    const mem = readWal(file);
    if (mem.kind !== 'frames') throw new Error(mem.kind);
    expect(mem.commits).toBe(3);
    const logEnd = mem.endOffset;
    expect(logEnd).toBeLessThan(file.byteLength / 10); // old frames fill the rest of the file
    // Every slot count: the log's frames found by salts wherever the file ends.
    for (const cut of [logEnd, logEnd + 1, logEnd + 4120, file.byteLength]) {
      const copy = `${path}-cut.wal`;
      writeFileSync(copy, file.subarray(0, cut));
      const into = new ReadBuffer(1 << 30);
      const fd = openSync(copy, 'r');
      try {
        const viaFile = readWal(fd, undefined, into);
        if (viaFile.kind !== 'frames') throw new Error(viaFile.kind);
        expect(viaFile.position).toEqual(mem.position);
        expect(viaFile.frames.map((f) => f.offset)).toEqual(mem.frames.map((f) => f.offset));
        // Only the log was read: the buffer is the log's size, not the file's.
        expect(into.take(0).buffer.byteLength).toBeLessThanOrEqual(logEnd);
      } finally {
        closeSync(fd);
      }
    }
  });

  it('ReadBuffer: grows to the largest read, keeps up to its limit, lets go of more on trim', () => {
    const rb = new ReadBuffer(1024);
    const a = rb.take(100);
    expect(a.byteLength).toBe(100);
    expect(rb.take(50).buffer).toBe(a.buffer);
    const big = rb.take(4096);
    expect(big.byteLength).toBe(4096);
    expect(big.byteOffset % 4).toBe(0);
    rb.trim();
    expect(rb.take(10).buffer).not.toBe(big.buffer);
    const small = rb.take(512);
    rb.trim();
    expect(rb.take(512).buffer).toBe(small.buffer);
  });

  it('parses a WAL SQLite wrote: header, frames up to the last commit, native checksum order', () => {
    const { path, s } = shardWithWal();
    s.write((db) => db.prepare('INSERT INTO t (v) VALUES (?)').run('x'.repeat(5000)));
    const wal = readFileSync(`${path}-wal`);
    const h = parseWalHeader(wal)!;
    expect(h.version).toBe(3007000);
    expect(h.pageSize).toBe(4096);
    expect(h.bigEndianChecksums).toBe(false);
    const res = readWal(wal);
    if (res.kind !== 'frames') throw new Error(res.kind);
    expect(res.commits).toBe(4); // create meta, insert meta row (both autocommit), create t, insert
    expect(res.frames.at(-1)!.commitSize).toBeGreaterThan(0);
    expect(res.lastCommitOffset).toBe(wal.length);
    expect(res.endOffset).toBe(wal.length);
  });

  it('reads a WAL with big-endian checksums, which SQLite accepts too', () => {
    const { dir, path, s } = shardWithWal();
    for (let i = 0; i < 20; i++) s.write((db) => db.prepare('INSERT INTO t (v) VALUES (?)').run(`row ${i}`));
    const le = readFileSync(`${path}-wal`);
    const be = toBigEndianWal(le);
    const a = readWal(le);
    const b = readWal(be);
    if (a.kind !== 'frames' || b.kind !== 'frames') throw new Error('no frames');
    expect(b.header.bigEndianChecksums).toBe(true);
    expect(b.frames.length).toBe(a.frames.length);
    expect(b.commits).toBe(a.commits);
    // SQLite itself recovers the rewritten log: the data is all there.
    const copy = join(dir, 'be.db');
    copyFileSync(path, copy);
    writeFileSync(`${copy}-wal`, be);
    const db = new Database(copy, { readonly: true });
    expect(db.prepare('SELECT count(*) FROM t').pluck().get()).toBe(20);
    db.close();
  });

  it('ignores a torn last frame and an uncommitted tail', () => {
    const { path, s } = shardWithWal();
    s.write((db) => db.prepare('INSERT INTO t (v) VALUES (?)').run('a'));
    const before = readWal(readFileSync(`${path}-wal`));
    if (before.kind !== 'frames') throw new Error(before.kind);
    // A transaction writing several pages: cut it before its commit frame, then mid-frame.
    s.write((db) => { for (let i = 0; i < 50; i++) db.prepare('INSERT INTO t (v) VALUES (?)').run('y'.repeat(1000)); });
    const full = readFileSync(`${path}-wal`);
    const frameSize = WAL_FRAME_HEADER_SIZE + 4096;
    const uncommitted = full.subarray(0, full.length - frameSize);
    const r1 = readWal(uncommitted);
    if (r1.kind !== 'frames') throw new Error(r1.kind);
    expect(r1.lastCommitOffset).toBe(before.lastCommitOffset);
    expect(r1.frames.length).toBe(before.frames.length);
    expect(r1.endOffset).toBe(uncommitted.length);
    const torn = full.subarray(0, full.length - 100);
    const r2 = readWal(torn);
    if (r2.kind !== 'frames') throw new Error(r2.kind);
    expect(r2.lastCommitOffset).toBe(before.lastCommitOffset);
    // A corrupt byte in a committed frame ends the valid log at that frame.
    const bad = Buffer.from(full);
    bad[before.lastCommitOffset + WAL_FRAME_HEADER_SIZE + 10]! ^= 0xff;
    const r3 = readWal(bad);
    if (r3.kind !== 'frames') throw new Error(r3.kind);
    expect(r3.lastCommitOffset).toBe(before.lastCommitOffset);
    expect(r3.endOffset).toBe(before.lastCommitOffset);
  });

  it('reads incrementally from a position, and from a file descriptor', async () => {
    const { path, s } = shardWithWal();
    const { openSync, closeSync } = await import('node:fs');
    const fd = openSync(`${path}-wal`, 'r');
    try {
      const first = readWal(fd);
      if (first.kind !== 'frames') throw new Error(first.kind);
      s.write((db) => db.prepare('INSERT INTO t (v) VALUES (?)').run('b'));
      const next = readWal(fd, first.position);
      if (next.kind !== 'frames') throw new Error(next.kind);
      expect(next.commits).toBe(1);
      expect(next.frames[0]!.offset).toBe(first.lastCommitOffset);
      const none = readWal(fd, next.position);
      if (none.kind !== 'frames') throw new Error(none.kind);
      expect(none.frames).toEqual([]);
      expect(none.position).toEqual(next.position);
    } finally {
      closeSync(fd);
    }
  });

  it('reports a restart when the log is reset (new salts), shrinks, or loses its header', () => {
    const { path, s } = shardWithWal();
    const first = readWal(readFileSync(`${path}-wal`));
    if (first.kind !== 'frames') throw new Error(first.kind);
    s.checkpoint();
    expect(readWal(readFileSync(`${path}-wal`), first.position)).toMatchObject({ kind: 'restart', reason: 'header-invalid' });
    s.write((db) => db.prepare('INSERT INTO t (v) VALUES (?)').run('c'));
    const after = readWal(readFileSync(`${path}-wal`), first.position);
    expect(after).toMatchObject({ kind: 'restart', reason: 'salt-changed' });
    const fresh = readWal(readFileSync(`${path}-wal`));
    if (fresh.kind !== 'frames') throw new Error(fresh.kind);
    expect(fresh.header.salt1).toBe((first.header.salt1 + 1) >>> 0);
    const { position } = fresh;
    truncateSync(`${path}-wal`, position.offset - 1000);
    expect(readWal(readFileSync(`${path}-wal`), position)).toMatchObject({ kind: 'restart', reason: 'shrunk' });
    expect(readWal(Buffer.alloc(0))).toEqual({ kind: 'empty' });
  });
});
