import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { DbHashState, PageHash, type PageHashId } from './checksum.ts';
import { newGenerationId } from './keys.ts';
import { createSnapshot, readSnapshot, readSnapshotHeader, snapshotAsFormat1, type SnapshotHeader } from './snapshot.ts';
import { createTestShard, tempDir } from './test-support.ts';

let cleanups: Array<() => void> = [];
afterEach(() => { for (const c of cleanups) c(); cleanups = []; });

function bigShard(mb: number) {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  const path = join(dir, 'big.db');
  const s = createTestShard(path, 'acme', 'inc-1');
  cleanups.unshift(() => { if (s.db.open) s.db.close(); });
  s.write((db) => {
    db.exec('CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)');
    const ins = db.prepare('INSERT INTO blobs (b) VALUES (?)');
    for (let i = 0; i < mb * 32; i++) ins.run(randomBytes(65536 / 2)); // half random, half compressible
  });
  s.checkpoint();
  return { dir, path, s };
}

describe('snapshot', () => {
  it('streams a 40 MB database into the store and back with peak RSS growth below one copy of it', () => {
    // A child process with --expose-gc: the baseline is taken after a full GC, away from vitest's own heap.
    // With MALLOC_ARENA_MAX=2, as `pnpm start` and the image run a node (docs/operations.md): without it each
    // libuv thread that happens to take a (de)compression job keeps a malloc arena of its own, so RSS depends on
    // how the jobs were spread (measured: 9-15 MB with 4 threads alone, 26 MB with 16, 46 MB once in a loaded
    // full suite), not on what the snapshot and restore hold; with it, 1-2 MB even with 64 threads.
    const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(new URL('./snapshot-memory-probe.ts', import.meta.url)), '40'], {
      encoding: 'utf8', env: { ...process.env, MALLOC_ARENA_MAX: '2' },
    });
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as { dbBytes: number; objectBytes: number; rssGrowth: number; txid: number; restoredTxid: number; identical: boolean };
    console.log(`snapshot of ${(r.dbBytes / 1e6).toFixed(1)} MB → ${(r.objectBytes / 1e6).toFixed(1)} MB object; peak RSS growth ${(r.rssGrowth / 1e6).toFixed(1)} MB`);
    expect(r.dbBytes).toBeGreaterThan(40e6);
    expect(r.identical).toBe(true);
    expect(r.restoredTxid).toBe(r.txid);
    // A whole copy in memory would be at least dbBytes. Earlier runs without the arena setting reached 24.5 MB
    // in a full suite; the bound stays at 3/4.
    expect(r.rssGrowth).toBeLessThan(r.dbBytes * 0.75);
  });

  it('refuses corrupted bytes and a file that changes while it streams', async () => {
    const { path, s } = bigShard(1);
    const ref = { tenant: 'acme', incarnation: 'inc-1', epoch: 1, generation: newGenerationId() };
    const snap = createSnapshot({ dbPath: path, ...ref, chunkPages: 16 });
    const chunks: Buffer[] = [];
    for await (const c of snap.stream) chunks.push(c as Buffer);
    const whole = Buffer.concat(chunks);
    const sink = () => {};
    const ok = await readSnapshot(Readable.from([whole]), sink);
    expect(ok.header.txid).toBe(s.txid());
    for (let i = 0; i < 200; i++) {
      const bad = Buffer.from(whole);
      const at = Math.floor(Math.random() * bad.length);
      bad[at]! ^= 1 + Math.floor(Math.random() * 255);
      await expect(readSnapshot(Readable.from([bad]), sink), `byte ${at}`).rejects.toMatchObject({ code: 'BACKUP_INVALID' });
    }
    await expect(readSnapshot(Readable.from([whole.subarray(0, whole.length - 1)]), sink)).rejects.toMatchObject({ code: 'BACKUP_INVALID' });
    // The database changes under the writer (a checkpoint it should have held): the stream fails.
    const snap2 = createSnapshot({ dbPath: path, ...ref, checksum: new DbHashState().checksum, pageHash: PageHash.xxh64 });
    const sinkStream = new PassThrough();
    sinkStream.resume();
    await expect(new Promise((resolve, reject) => { snap2.stream.on('error', reject).on('end', resolve).pipe(sinkStream); })).rejects.toThrow(/changed while being read/);
    await expect(snap2.done).rejects.toThrow(/changed while being read/);
  });
});

describe('snapshot formats and page hashes', () => {
  async function bytesOf(path: string, pageHash?: PageHashId): Promise<Buffer> {
    const ref = { tenant: 'acme', incarnation: 'inc-1', epoch: 1, generation: newGenerationId() };
    const snap = createSnapshot({ dbPath: path, ...ref, chunkPages: 16, ...(pageHash === undefined ? {} : { pageHash }) });
    const chunks: Buffer[] = [];
    for await (const c of snap.stream) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
  /** The file's checksum page by page, as the shipper keeps it. */
  function checksumOf(path: string, pageHash: PageHashId): bigint {
    const file = readFileSync(path);
    const state = new DbHashState(64, pageHash);
    for (let p = 1; p * 4096 <= file.length; p++) state.setPage(p, file.subarray((p - 1) * 4096, p * 4096));
    return state.checksum;
  }
  async function read(bytes: Buffer): Promise<{ header: SnapshotHeader; pages: Buffer }> {
    const parts: Buffer[] = [];
    const { header } = await readSnapshot(Readable.from([bytes]), (_first, pages) => { parts.push(Buffer.from(pages)); });
    return { header, pages: Buffer.concat(parts) };
  }
  /** `bytes` with a u32 set at `at` and the trailer re-sealed. */
  function patched(bytes: Buffer, at: number, value: number, u16 = false): Buffer {
    const body = Buffer.from(bytes.subarray(0, bytes.length - 32));
    if (u16) body.writeUInt16BE(value, at);
    else body.writeUInt32BE(value, at);
    return Buffer.concat([body, createHash('sha256').update(body).digest()]);
  }

  it('format 2 records the page hash of its checksum: XXH64 by default, SHA-256 when asked', async () => {
    const { path } = bigShard(1);
    for (const [asked, want] of [[undefined, PageHash.xxh64], [PageHash.sha256, PageHash.sha256]] as const) {
      const bytes = await bytesOf(path, asked);
      expect(bytes.readUInt16BE(4)).toBe(2);
      expect(bytes.readUInt32BE(60)).toBe(want);
      const { header, pages } = await read(bytes);
      expect(header).toMatchObject({ major: 2, pageHash: want, checksum: checksumOf(path, want) });
      expect(pages.equals(readFileSync(path))).toBe(true);
      expect(await readSnapshotHeader(Readable.from([bytes]))).toMatchObject({ pageHash: want, checksum: header.checksum });
    }
    expect(checksumOf(path, PageHash.xxh64)).not.toBe(checksumOf(path, PageHash.sha256));
  });

  it('reads format 1 (no page hash field) as SHA-256, with the same pages and checksum', async () => {
    const { path } = bigShard(1);
    const v2 = await bytesOf(path, PageHash.sha256);
    const v1 = snapshotAsFormat1(v2);
    expect(v1.readUInt16BE(4)).toBe(1);
    expect(v1.length).toBe(v2.length - 4);
    const a = await read(v2);
    const b = await read(v1);
    expect(b.header).toMatchObject({ ...a.header, major: 1, pageHash: PageHash.sha256 });
    expect(b.pages.equals(a.pages)).toBe(true);
    expect(() => snapshotAsFormat1(patched(v2, 60, PageHash.xxh64))).toThrow(RangeError);
  });

  it('names an unknown major version and refuses an unknown page hash, as BACKUP_INVALID', async () => {
    const { path } = bigShard(1);
    const bytes = await bytesOf(path);
    await expect(read(patched(bytes, 4, 3, true))).rejects.toMatchObject({
      code: 'BACKUP_INVALID', message: expect.stringMatching(/has snapshot format 3\.0; this build reads major versions 1 and 2/),
    });
    await expect(read(patched(bytes, 60, 9))).rejects.toMatchObject({ code: 'BACKUP_INVALID', message: expect.stringMatching(/unknown page hash 9/) });
  });
});
