/**
 * `@domicile/replication/testing`: real backups for other packages' tests (the
 * router's backups route, the CLI's offline restore). Builds a shard-shaped
 * SQLite file, ships it with this library's own WalShipper and snapshot
 * writer into a store: exactly the objects a wired node would upload.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { ObjectStore } from '@domicile/object-store';
import { newGenerationId, snapshotKey, type GenerationRef } from './keys.ts';
import { createSnapshot } from './snapshot.ts';
import { createTestShard, type TestShard } from './test-support.ts';
import { WalShipper } from './wal-shipper.ts';

export { createTestShard, dumpDatabase, tempDir, type TestShard } from './test-support.ts';

/** Options of {@link writeTestBackup}. */
export interface TestBackupOptions {
  store: ObjectStore;
  /** Directory for the source database (`<dir>/<tenant>-<epoch>-<random>.db`). */
  dir: string;
  tenant: string;
  incarnation: string;
  epoch?: number;
  /** Rows inserted after the snapshot, one transaction and one segment each. */
  rows: number;
  /** Commit time of each shipped transaction: `start + i × step` (defaults: now, 1000 ms). */
  startTime?: number;
  stepMs?: number;
}

/** What {@link writeTestBackup} stored. */
export interface TestBackup {
  ref: GenerationRef;
  /** The source database (closed). */
  dbPath: string;
  /** Key and txid of the snapshot (the table exists, no rows). */
  snapshot: { key: string; txid: number; time: number };
  /** One per row, in order: its segment key, the txid after it, its commit time. */
  segments: Array<{ key: string; txid: number; time: number }>;
}

/**
 * A generation with a snapshot of table `items (id INTEGER PRIMARY KEY, name TEXT)`
 * (empty) followed by one segment per inserted row `(i, 'row i')`, i = 1..rows.
 */
export async function writeTestBackup(opts: TestBackupOptions): Promise<TestBackup> {
  const epoch = opts.epoch ?? 1;
  const step = opts.stepMs ?? 1000;
  let clock = opts.startTime ?? Date.now();
  const dbPath = join(opts.dir, `${opts.tenant}-${epoch}-${randomBytes(4).toString('hex')}.db`);
  const shard: TestShard = createTestShard(dbPath, opts.tenant, opts.incarnation);
  let shipper: WalShipper | undefined;
  try {
    shard.write((db) => db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)'));
    shard.checkpoint();
    const ref: GenerationRef = { tenant: opts.tenant, incarnation: opts.incarnation, epoch, generation: newGenerationId(clock) };
    shipper = WalShipper.beginGeneration({ dbPath, ...ref, now: () => clock });
    const release = shipper.hold();
    const snap = createSnapshot({ dbPath, ...ref, checksum: shipper.checksum, pageHash: shipper.pageHash, time: clock });
    const snapKey = snapshotKey(ref, snap.header.txid);
    await opts.store.put(snapKey, snap.stream, { ifNoneMatch: true });
    await snap.done;
    release();
    const segments: TestBackup['segments'] = [];
    const insert = shard.db.prepare('INSERT INTO items (id, name) VALUES (?, ?)');
    for (let i = 1; i <= opts.rows; i++) {
      clock += step;
      shard.write(() => insert.run(i, `row ${i}`));
      const c = shipper.capture();
      if (c.kind !== 'segment') throw new Error(`expected a segment after row ${i}, got ${c.kind}`);
      await opts.store.put(c.key, c.bytes, { ifNoneMatch: true });
      shipper.acknowledge(c.maxTxid);
      segments.push({ key: c.key, txid: c.maxTxid, time: clock });
    }
    return { ref, dbPath, snapshot: { key: snapKey, txid: snap.header.txid, time: snap.header.time }, segments };
  } finally {
    shipper?.close();
    if (shard.db.open) shard.db.close();
  }
}

/** `PRAGMA integrity_check` of a database file, as SQLite reports it (`['ok']` when sound). */
export function integrityCheck(path: string): string[] {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('PRAGMA integrity_check').pluck().all() as string[];
  } finally {
    db.close();
  }
}
