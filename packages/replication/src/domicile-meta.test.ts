import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { seededRandom } from '@domicile/testkit/random';
import { headerPageSize } from './db-file.ts';
import { DomicileMetaReader, MalformedDatabaseError, readDomicileMeta, type PageGetter } from './domicile-meta.ts';
import { createTestShard, tempDir } from './test-support.ts';

const { dir, cleanup } = tempDir();
afterAll(cleanup);

/** Page getter over the database file as it is now (callers checkpoint first). */
function filePages(path: string): PageGetter {
  const bytes = readFileSync(path);
  const pageSize = headerPageSize(bytes);
  const pages = bytes.length / pageSize;
  return (pgno) => (pgno >= 1 && pgno <= pages ? bytes.subarray((pgno - 1) * pageSize, pgno * pageSize) : undefined);
}

const META_TABLE = `CREATE TABLE _domicile_meta (
  id INTEGER PRIMARY KEY CHECK (id = 1), tenant TEXT NOT NULL, incarnation TEXT NOT NULL,
  epoch INTEGER NOT NULL, txid INTEGER NOT NULL, format INTEGER NOT NULL, created_at TEXT NOT NULL) STRICT`;

describe('readDomicileMeta', () => {
  it('reads the row of a shard file, and null without the table or with it empty', () => {
    const shard = createTestShard(join(dir, 'plain.db'), 'acme', 'inc-7');
    shard.write((db) => db.exec('CREATE TABLE t (x)'));
    shard.write(() => {});
    shard.checkpoint();
    expect(readDomicileMeta(filePages(shard.path))).toEqual({ tenant: 'acme', incarnation: 'inc-7', epoch: 1, txid: 2 });
    shard.db.exec('DELETE FROM _domicile_meta');
    shard.checkpoint();
    expect(readDomicileMeta(filePages(shard.path))).toBeNull();
    shard.db.exec('DROP TABLE _domicile_meta');
    shard.checkpoint();
    expect(readDomicileMeta(filePages(shard.path))).toBeNull();
    shard.db.close();
  });

  it('follows overflow pages and interior root pages (the general path)', () => {
    const db = new Database(join(dir, 'shapes.db'));
    db.pragma('page_size = 512');
    db.exec(META_TABLE.replace('CHECK (id = 1)', ''));
    const long = 'i'.repeat(3000); // spills to overflow pages of 512 bytes
    db.prepare("INSERT INTO _domicile_meta VALUES (1, 'tenant-x', ?, 3, 9007199254740991, 1, 'now')").run(long);
    const reader = new DomicileMetaReader();
    const get = () => filePages(join(dir, 'shapes.db'));
    expect(reader.read(get())).toEqual({ tenant: 'tenant-x', incarnation: long, epoch: 3, txid: Number.MAX_SAFE_INTEGER });
    // Enough rows after the first for the table's root to become an interior page: the first row still answers.
    const add = db.prepare("INSERT INTO _domicile_meta VALUES (?, 'other', 'other', 1, 1, 1, 'now')");
    for (let id = 2; id <= 200; id++) add.run(id);
    const root = db.prepare("SELECT rootpage FROM sqlite_schema WHERE name = '_domicile_meta'").pluck().get() as number;
    expect(get()(root)![0]).toBe(0x05); // interior table page
    expect(reader.read(get())).toEqual(readDomicileMeta(get()));
    expect(reader.read(get())!.incarnation).toBe(long);
    db.close();
  });

  it('refuses a meta row of another shape', () => {
    const db = new Database(join(dir, 'odd.db'));
    db.exec("CREATE TABLE _domicile_meta (id INTEGER PRIMARY KEY, tenant, incarnation, epoch, txid)"); // no affinities: any value stays as given
    db.exec("INSERT INTO _domicile_meta VALUES (1, 'a', 'b', 1, 'not a number')");
    expect(() => readDomicileMeta(filePages(join(dir, 'odd.db')))).toThrow(MalformedDatabaseError);
    expect(() => new DomicileMetaReader().read(filePages(join(dir, 'odd.db')))).toThrow(MalformedDatabaseError);
    db.exec('UPDATE _domicile_meta SET txid = 1, tenant = 42');
    expect(() => new DomicileMetaReader().read(filePages(join(dir, 'odd.db')))).toThrow(MalformedDatabaseError);
    db.close();
  });
});

describe('DomicileMetaReader', () => {
  it.each([1, 2, 3, 4])('answers what SQLite holds after every step of a random schema history, one reader throughout (seed %i)', (seed) => {
    const r = seededRandom(seed);
    const path = join(dir, `history-${seed}.db`);
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec(META_TABLE);
    db.exec("INSERT INTO _domicile_meta VALUES (1, 'acme', 'inc-1', 1, 0, 1, 'now')");
    const reader = new DomicileMetaReader();
    let tables = 0;
    let recreated = 0;
    for (let step = 0; step < 120; step++) {
      const x = r();
      if (x < 0.45) db.exec('UPDATE _domicile_meta SET txid = txid + 1');
      else if (x < 0.6) db.exec(`CREATE TABLE t${tables++} (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t${tables - 1} (v) VALUES (hex(randomblob(200)))`);
      else if (x < 0.7 && tables > 0) db.exec(`DROP TABLE IF EXISTS t${Math.floor(r() * tables)}`);
      else if (x < 0.75) db.exec('VACUUM');
      else if (x < 0.82) db.exec(`UPDATE _domicile_meta SET epoch = epoch + 1, tenant = 'acme-${step}'`);
      else if (x < 0.9) {
        // The meta table dropped and created again after other tables: another root page under a new schema cookie.
        const row = db.prepare('SELECT * FROM _domicile_meta').get() as Record<string, unknown>;
        db.exec('DROP TABLE _domicile_meta');
        db.exec(`CREATE TABLE filler${step} (x); INSERT INTO filler${step} VALUES (randomblob(3000))`);
        db.exec(META_TABLE);
        db.prepare('INSERT INTO _domicile_meta VALUES (1, ?, ?, ?, ?, 1, ?)').run(row.tenant, row.incarnation, row.epoch, row.txid, 'now');
        recreated++;
      } else db.exec('UPDATE _domicile_meta SET txid = txid + 1');
      db.pragma('wal_checkpoint(TRUNCATE)');
      const want = db.prepare('SELECT tenant, incarnation, epoch, txid FROM _domicile_meta').get();
      const pages = filePages(path);
      expect(reader.read(pages), `step ${step}`).toEqual(want);
      expect(readDomicileMeta(pages), `step ${step}`).toEqual(want);
    }
    expect(recreated).toBeGreaterThan(3);
    db.close();
  });
});
