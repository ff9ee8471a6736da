/**
 * A file swapped in between the shipper's identity check and its opening of
 * the log (possible once the shipper runs on another thread than the swap:
 * restore in place, move). The swap is injected inside the first `statSync`
 * of the database path, so the log the shipper opens next is the new file's.
 * It must report a restart, never ship the new file's frames as this
 * generation's.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, it, vi } from 'vitest';
import { FsObjectStore } from '@domicile/object-store';
import { newGenerationId, type GenerationRef } from './keys.ts';
import { beginTestGeneration, createTestShard, tempDir } from './test-support.ts';

const hook: { path?: string; swap?: () => void } = {};
vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  return {
    ...real,
    statSync: ((p: fs.PathLike, o?: fs.StatSyncOptions) => {
      const st = real.statSync(p, o);
      if (hook.swap && p === hook.path) {
        const swap = hook.swap;
        hook.swap = undefined;
        swap(); // after the stat: the caller saw the old file
      }
      return st;
    }) as typeof fs.statSync,
  };
});

const cleanups: Array<() => unknown> = [];
afterEach(() => { for (const c of cleanups.splice(0)) c(); });

it('a log opened after a swap that followed the identity check is reported as a restart, not shipped', async () => {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  const path = join(dir, 'acme.db');
  const shard = createTestShard(path, 'acme', 'inc-1');
  shard.write((db) => db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)'));
  const store = new FsObjectStore(join(dir, 'bucket'));
  const ref: GenerationRef = { tenant: 'acme', incarnation: 'inc-1', epoch: 1, generation: newGenerationId() };
  const shipper = await beginTestGeneration(shard, store, ref);
  cleanups.unshift(() => shipper.close());
  shard.write((db) => db.prepare('INSERT INTO items (name) VALUES (?)').run('a'));
  const c1 = shipper.capture();
  expect(c1.kind).toBe('segment');
  if (c1.kind === 'segment') shipper.acknowledge(c1.maxTxid);
  // Our own checkpoint: the next log may start fresh (the case where a foreign log would look like ours).
  expect(shipper.checkpointAllowed()).toBe(true);
  shipper.noteCheckpoint(shard.checkpoint());
  shipper.releaseFile();
  shard.db.close();

  // The file that will be swapped in: the same history, one more commit (page 1 included, so every page
  // the shipper needs is in the log), kept in its own log.
  const other = join(dir, 'other.db');
  fs.copyFileSync(path, other);
  const b = new Database(other);
  cleanups.unshift(() => b.close());
  b.pragma('journal_mode = WAL');
  b.pragma('wal_autocheckpoint = 0');
  b.exec("BEGIN; CREATE TABLE foreign_rows (x); INSERT INTO items (name) VALUES ('foreign'); UPDATE _domicile_meta SET txid = txid + 1 WHERE id = 1; COMMIT");
  expect(fs.existsSync(`${other}-wal`)).toBe(true);

  hook.path = path;
  hook.swap = () => {
    for (const s of ['-wal', '-shm', '']) if (fs.existsSync(other + s)) fs.renameSync(other + s, path + s);
  };
  const c2 = shipper.capture();
  expect(hook.swap).toBeUndefined(); // the swap did run inside the capture
  expect(c2).toEqual({ kind: 'restart', reason: 'db-replaced' });
});
