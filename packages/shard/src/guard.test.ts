import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import Database from 'better-sqlite3';
import type { Database as SqliteDatabase } from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DomicileError, ErrorCode } from '@domicile/errors';
import { guardExtensionPath, installGuard, lookasideHighwater, watchdogThreads, type Guard, type GuardOptions } from './guard.ts';

const RUNAWAY = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c';

let dir: string;
let db: SqliteDatabase;
let guard: Guard;
const extra: SqliteDatabase[] = [];

function openGuarded(name: string, opts: Partial<GuardOptions> = {}): [SqliteDatabase, Guard] {
  const d = new Database(join(dir, name));
  const g = installGuard(d, { timeoutMs: 0, group: 1, ...opts });
  return [d, g];
}

function run(sql: string, on: SqliteDatabase = db): unknown {
  const s = on.prepare(sql);
  return s.reader ? s.all() : s.run();
}

/** Run tenant SQL that must fail; returns the classified error. */
function refused(sql: string, on: SqliteDatabase = db, g: Guard = guard): DomicileError {
  try {
    run(sql, on);
  } catch (err) {
    return g.classify(err);
  }
  throw new Error(`statement ran: ${sql}`);
}

function files(): string[] {
  return readdirSync(dir).sort();
}

function meta(): unknown {
  return db.prepare('SELECT * FROM _domicile_meta ORDER BY k').all();
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'domicile-guard-'));
  [db, guard] = openGuarded('tenant.db');
  guard.trusted(() => {
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE _domicile_meta (k TEXT PRIMARY KEY, v)');
    db.exec("INSERT INTO _domicile_meta VALUES ('epoch', 1)");
    db.exec('CREATE INDEX _domicile_meta_v ON _domicile_meta(v)');
  });
  db.exec('CREATE TABLE t (a)');
});

afterEach(() => {
  for (const d of extra.splice(0)) if (d.open) d.close();
  if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('guardExtensionPath', () => {
  it('names the built extension by absolute path', () => {
    const p = guardExtensionPath();
    expect(isAbsolute(p)).toBe(true);
    expect(existsSync(p)).toBe(true);
  });
});

/** Denied PRAGMAs with a value for the assignment form (null: no assignment form). */
const DENIED_PRAGMAS: Record<string, string | null> = {
  journal_mode: 'DELETE', wal_checkpoint: 'TRUNCATE', wal_autocheckpoint: '0', synchronous: 'OFF',
  locking_mode: 'EXCLUSIVE', cache_size: '1', mmap_size: '268435456', page_size: '512', max_page_count: '1',
  temp_store: 'FILE', temp_store_directory: "'tmpdir'", data_store_directory: "'datadir'", writable_schema: 'ON',
  database_list: null, busy_timeout: '0', cell_size_check: 'ON', auto_vacuum: 'FULL', journal_size_limit: '0',
  query_only: 'ON', secure_delete: 'ON', trusted_schema: 'ON', hard_heap_limit: '1', soft_heap_limit: '1',
  threads: '4', shrink_memory: null, ignore_check_constraints: 'ON', legacy_alter_table: 'ON',
  reverse_unordered_selects: 'ON', compile_options: null, analysis_limit: '1',
};
/** Allowed only as reads. */
const READ_ONLY_PRAGMAS: Record<string, string> = { schema_version: '99', encoding: "'UTF-16le'", page_size: '512' };

/** Whether `pragma_<name>` exists as a table-valued function in this SQLite. */
function hasPragmaTable(name: string): boolean {
  const raw = new Database(':memory:');
  try {
    raw.prepare(`SELECT * FROM pragma_${name}`);
    return true;
  } catch {
    return false;
  } finally {
    raw.close();
  }
}

interface HostileCase {
  sql: string;
  code?: ErrorCode;
  reason?: string | RegExp;
}

const HOSTILE: HostileCase[] = [
  { sql: "ATTACH 'x.db' AS x", reason: 'ATTACH is not allowed' },
  { sql: "ATTACH 'file:x?mode=memory&cache=shared' AS x", reason: 'ATTACH is not allowed' },
  { sql: "ATTACH 'file:x.db?mode=rwc' AS x" },
  { sql: "ATTACH ':memory:' AS x" },
  { sql: "ATTACH '' AS x" },
  { sql: "ATTACH '../escape.db' AS x" },
  { sql: "ATTACH 'x' || '.db' AS x" },
  { sql: 'ATTACH ? AS x' },
  { sql: 'DETACH main', reason: 'DETACH is not allowed' },
  { sql: 'DETACH x' },
  { sql: "VACUUM INTO 'x.db'", reason: 'VACUUM INTO is not allowed' },
  { sql: "VACUUM INTO '../escape-vacuum.db'" },
  { sql: "VACUUM main INTO 'file:x.db?mode=rwc'" },
  { sql: "VACUUM INTO 'x' || '.db'" },
  { sql: "SELECT load_extension('x')", reason: 'function load_extension() is not allowed' },
  { sql: "SELECT load_extension('/tmp/x.so', 'sqlite3_x_init')" },
  { sql: "SELECT fts3_tokenizer('simple')" },
  ...Object.entries(DENIED_PRAGMAS).flatMap(([name, value]): HostileCase[] => [
    { sql: `PRAGMA ${name}`, reason: `PRAGMA ${name} is not allowed` },
    { sql: `PRAGMA main.${name}` },
    ...(value === null ? [] : [{ sql: `PRAGMA ${name} = ${value}` }, { sql: `PRAGMA ${name}(${value})` }]),
    ...(hasPragmaTable(name) ? [{ sql: `SELECT * FROM pragma_${name}` }] : []),
  ]).filter((c) => !/^(PRAGMA (main\.)?page_size|SELECT \* FROM pragma_page_size)$/.test(c.sql)), // page_size reads are allowed
  ...Object.entries(READ_ONLY_PRAGMAS).map(([name, value]) => ({ sql: `PRAGMA ${name} = ${value}`, reason: `PRAGMA ${name} is read-only here` })),
  { sql: "SELECT * FROM pragma_table_info('t') JOIN pragma_database_list" },
  { sql: 'CREATE TABLE _domicile_x (a)', reason: 'objects named _domicile_* are reserved' },
  { sql: 'CREATE TABLE _DOMICILE_x (a)' },
  { sql: 'CREATE TABLE "_Domicile_x" (a)' },
  { sql: 'CREATE TABLE main._domicile_x (a)' },
  { sql: 'CREATE TABLE IF NOT EXISTS _domicile_meta (a)' },
  { sql: 'CREATE TABLE _domicile_x AS SELECT 1' },
  { sql: 'CREATE TEMP TABLE _domicile_x (a)' },
  { sql: 'CREATE INDEX _domicile_i ON t(a)' },
  { sql: 'CREATE INDEX i ON _domicile_meta(v)' },
  { sql: 'CREATE TRIGGER _domicile_tr AFTER INSERT ON t BEGIN SELECT 1; END' },
  { sql: 'CREATE TRIGGER tr AFTER INSERT ON _domicile_meta BEGIN SELECT 1; END' },
  { sql: 'CREATE TEMP TRIGGER tr AFTER INSERT ON main._domicile_meta BEGIN SELECT 1; END' },
  { sql: 'CREATE VIEW _domicile_v AS SELECT 1' },
  { sql: 'CREATE TEMP VIEW _domicile_v AS SELECT 1' },
  { sql: 'CREATE VIRTUAL TABLE _domicile_f USING fts5(a)' },
  { sql: 'CREATE VIRTUAL TABLE _domicile USING fts5(a)' }, // its shadow tables would be _domicile_data, ...
  { sql: 'CREATE VIRTUAL TABLE d USING dbstat', reason: 'virtual table module dbstat is not allowed' },
  { sql: "INSERT INTO _domicile_meta VALUES ('k', 1)" },
  { sql: "INSERT INTO main._domicile_meta VALUES ('k', 1)" },
  { sql: "REPLACE INTO _domicile_meta VALUES ('epoch', 9)" },
  { sql: "INSERT INTO _domicile_meta VALUES ('epoch', 1) ON CONFLICT(k) DO UPDATE SET v = 9" },
  { sql: 'INSERT INTO _domicile_meta SELECT * FROM _domicile_meta' },
  { sql: 'UPDATE _domicile_meta SET v = 2' },
  { sql: 'DELETE FROM _domicile_meta' },
  { sql: 'DROP TABLE _domicile_meta' },
  { sql: 'DROP INDEX _domicile_meta_v' },
  { sql: 'ALTER TABLE _domicile_meta ADD COLUMN z' },
  { sql: 'ALTER TABLE _domicile_meta RENAME TO m2' },
  { sql: 'ALTER TABLE _domicile_meta RENAME COLUMN v TO w' },
  { sql: 'ALTER TABLE _domicile_meta DROP COLUMN v' },
  { sql: 'BEGIN', reason: 'transaction control is not allowed here; a batch is the transaction' },
  { sql: 'BEGIN IMMEDIATE' },
  { sql: 'BEGIN EXCLUSIVE' },
  { sql: 'COMMIT' },
  { sql: 'END' },
  { sql: 'ROLLBACK' },
  { sql: 'SAVEPOINT s' },
  { sql: 'RELEASE s' },
  { sql: 'ROLLBACK TO s' },
  { sql: "SELECT _domicile_guard('', 'trusted', 1)", reason: 'the guard control function is not available to tenant SQL' },
  { sql: `SELECT _domicile_guard('${'0'.repeat(32)}', 'trusted', 1)` },
  { sql: "SELECT _domicile_guard(NULL, 'txn', 1)" },
  { sql: "SELECT _domicile_guard('', 'secret', NULL)" },
  { sql: "SELECT _domicile_guard('', 'denial', NULL)" },
];

describe('hostile tenant SQL', () => {
  it.each(HOSTILE)('refuses $sql and writes no file', ({ sql, code, reason }) => {
    const before = files();
    const metaBefore = meta();
    const err = refused(sql);
    expect(err.code).toBe(code ?? 'STATEMENT_NOT_ALLOWED');
    if (typeof reason === 'string') expect(err.message).toBe(reason);
    else if (reason) expect(err.message).toMatch(reason);
    expect(files()).toEqual(before);
    expect(meta()).toEqual(metaBefore);
    expect(existsSync(join(dir, '..', 'escape.db'))).toBe(false);
    expect(existsSync(join(dir, '..', 'escape-vacuum.db'))).toBe(false);
    // The connection stays usable and still guarded.
    expect(run('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    expect(refused("INSERT INTO _domicile_meta VALUES ('after', 1)").code).toBe('STATEMENT_NOT_ALLOWED');
  });

  it('refuses a tenant trigger that writes a _domicile_ table when it fires', () => {
    run("CREATE TRIGGER evil AFTER INSERT ON t BEGIN INSERT INTO _domicile_meta VALUES ('evil', 1); END");
    const before = meta();
    const err = refused('INSERT INTO t VALUES (1)');
    expect(err.code).toBe('STATEMENT_NOT_ALLOWED');
    expect(err.message).toBe('objects named _domicile_* are reserved');
    expect(meta()).toEqual(before);
    expect(run('SELECT count(*) AS n FROM t')).toEqual([{ n: 0 }]);
  });

  it('refuses an INSTEAD OF trigger on a tenant view that deletes from a _domicile_ table', () => {
    run('CREATE VIEW v AS SELECT a FROM t');
    run('CREATE TRIGGER evil INSTEAD OF INSERT ON v BEGIN DELETE FROM _domicile_meta; END');
    expect(refused('INSERT INTO v VALUES (1)').code).toBe('STATEMENT_NOT_ALLOWED');
    expect(meta()).toEqual([{ k: 'epoch', v: 1 }]);
  });

  it('refuses several statements in one prepare (better-sqlite3 checks the tail itself)', () => {
    const before = files();
    expect(() => db.prepare("SELECT 1; ATTACH 'x.db' AS x")).toThrow(/more than one statement/);
    expect(refused("SELECT 1; ATTACH 'x.db' AS x").code).toBe('BAD_REQUEST');
    expect(files()).toEqual(before);
  });

  it('guards every statement of db.exec, not only the first', () => {
    const before = files();
    let err: DomicileError | undefined;
    try {
      db.exec("SELECT 1; ATTACH 'x.db' AS x");
    } catch (e) {
      err = guard.classify(e);
    }
    expect(err?.code).toBe('STATEMENT_NOT_ALLOWED');
    expect(files()).toEqual(before);
  });

  it('cannot claim the secret of a connection a second time', () => {
    expect(() => db.prepare("SELECT _domicile_guard('', 'secret', NULL)").get()).toThrow();
  });
});

describe('allowed tenant SQL', () => {
  it('runs plain VACUUM, reserved tables included, without leaving files', () => {
    run('INSERT INTO t VALUES (1), (2)');
    const before = files();
    run('VACUUM');
    run('VACUUM main');
    expect(files()).toEqual(before);
    expect(run('SELECT count(*) AS n FROM t')).toEqual([{ n: 2 }]);
    expect(meta()).toEqual([{ k: 'epoch', v: 1 }]);
    expect(run('PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }]);
    // After a VACUUM the guard is as strict as before.
    expect(refused("ATTACH '' AS x").code).toBe('STATEMENT_NOT_ALLOWED');
    expect(refused('BEGIN').code).toBe('STATEMENT_NOT_ALLOWED');
  });

  it('keeps temporary storage in memory (the process temp dir cannot follow a region)', () => {
    expect(guard.trusted(() => db.pragma('temp_store', { simple: true }))).toBe(2);
  });

  it.each([
    'PRAGMA table_info(t)', 'PRAGMA table_xinfo(t)', 'PRAGMA table_list', 'PRAGMA index_list(_domicile_meta)',
    'PRAGMA index_info(_domicile_meta_v)', 'PRAGMA index_xinfo(_domicile_meta_v)', 'PRAGMA foreign_key_list(t)',
    'PRAGMA foreign_key_check', 'PRAGMA foreign_keys', 'PRAGMA foreign_keys = ON', 'PRAGMA defer_foreign_keys = ON',
    'PRAGMA recursive_triggers = ON', 'PRAGMA user_version', 'PRAGMA user_version = 7', 'PRAGMA application_id = 5',
    'PRAGMA quick_check', 'PRAGMA integrity_check', 'PRAGMA integrity_check(t)', 'PRAGMA optimize', 'PRAGMA collation_list',
    'PRAGMA function_list', 'PRAGMA pragma_list', 'PRAGMA module_list', 'PRAGMA data_version', 'PRAGMA freelist_count',
    'PRAGMA page_count', 'PRAGMA schema_version', 'PRAGMA encoding', 'PRAGMA page_size', 'PRAGMA case_sensitive_like = 1',
    'PRAGMA incremental_vacuum(1)', "SELECT * FROM pragma_table_info('t')", "SELECT * FROM pragma_index_list('t')",
    'SELECT name FROM pragma_function_list', 'SELECT * FROM _domicile_meta', 'SELECT * FROM sqlite_schema',
  ])('allows %s', (sql) => {
    expect(() => run(sql)).not.toThrow();
  });

  it('reads a reserved table', () => {
    expect(run('SELECT v FROM _domicile_meta WHERE k = ?'.replace('?', "'epoch'"))).toEqual([{ v: 1 }]);
  });

  it('creates and uses FTS4, FTS5 and R-Tree tables (their modules read PRAGMA page_size internally)', () => {
    run('CREATE VIRTUAL TABLE f4 USING fts4(body)');
    run('CREATE VIRTUAL TABLE f5 USING fts5(body)');
    run('CREATE VIRTUAL TABLE r USING rtree(id, x0, x1)');
    run("INSERT INTO f4 VALUES ('hello world')");
    run("INSERT INTO f5 VALUES ('hello world')");
    run('INSERT INTO r VALUES (1, 0, 10)');
    expect(run("SELECT count(*) AS n FROM f5 WHERE f5 MATCH 'hello'")).toEqual([{ n: 1 }]);
    expect(run("SELECT count(*) AS n FROM f4 WHERE f4 MATCH 'world'")).toEqual([{ n: 1 }]);
    expect(run('SELECT id FROM r WHERE x0 <= 5 AND x1 >= 5')).toEqual([{ id: 1 }]);
  });
});

describe('trusted mode', () => {
  it('lets Domicile write reserved tables and run transaction control, then restores the rules', () => {
    guard.trusted(() => {
      run('BEGIN IMMEDIATE');
      run("INSERT INTO _domicile_meta VALUES ('txid', 0)");
      run('SAVEPOINT s');
      run("UPDATE _domicile_meta SET v = 1 WHERE k = 'txid'");
      run('RELEASE s');
      run('COMMIT');
    });
    expect(meta()).toEqual([{ k: 'epoch', v: 1 }, { k: 'txid', v: 1 }]);
    expect(refused("UPDATE _domicile_meta SET v = 2 WHERE k = 'txid'").code).toBe('STATEMENT_NOT_ALLOWED');
  });

  it('is re-entrant and restores the previous state after a throw', () => {
    const inner = guard.trusted(() => guard.trusted(() => {
      run("INSERT INTO _domicile_meta VALUES ('nested', 1)");
      return 42;
    }));
    expect(inner).toBe(42);
    expect(() => guard.trusted(() => guard.trusted(() => {
      throw new Error('boom');
    }))).toThrow('boom');
    expect(refused("DELETE FROM _domicile_meta WHERE k = 'nested'").code).toBe('STATEMENT_NOT_ALLOWED');
    guard.trusted(() => run("DELETE FROM _domicile_meta WHERE k = 'nested'"));
    expect(meta()).toEqual([{ k: 'epoch', v: 1 }]);
  });

  it('does not leak between connections', () => {
    const [other, otherGuard] = openGuarded('other.db');
    extra.push(other);
    guard.trusted(() => {
      expect(refused('CREATE TABLE _domicile_x (a)', other, otherGuard).code).toBe('STATEMENT_NOT_ALLOWED');
    });
  });
});

describe('transaction control', () => {
  it('is allowed only while setTxnControl(true)', () => {
    guard.setTxnControl(true);
    run('BEGIN');
    run('INSERT INTO t VALUES (1)');
    run('SAVEPOINT s');
    run('INSERT INTO t VALUES (2)');
    run('ROLLBACK TO s');
    run('RELEASE s');
    run('COMMIT');
    expect(run('SELECT count(*) AS n FROM t')).toEqual([{ n: 1 }]);
    guard.setTxnControl(false);
    expect(refused('BEGIN').code).toBe('STATEMENT_NOT_ALLOWED');
  });

  it('still protects reserved tables inside an interactive transaction', () => {
    guard.setTxnControl(true);
    run('BEGIN');
    expect(refused('DELETE FROM _domicile_meta').code).toBe('STATEMENT_NOT_ALLOWED');
    run('ROLLBACK');
  });
});

describe('memory per connection', () => {
  it('turns SQLite lookaside off: statements run without ever using a lookaside slot', () => {
    run('CREATE TABLE lookaside_t (id INTEGER PRIMARY KEY, v TEXT)');
    for (let i = 0; i < 50; i++) run(`INSERT INTO lookaside_t (v) VALUES ('row ${i}')`);
    expect(run("SELECT count(*) AS n FROM lookaside_t WHERE v LIKE 'row%'")).toEqual([{ n: 50 }]);
    // With SQLite's default (48 KiB per connection) this is well above 0 after the statements above.
    expect(lookasideHighwater(guard)).toBe(0);
  });
});

describe('limits', () => {
  it('refuses SQL text over 1 MiB', () => {
    const err = refused(`SELECT '${'a'.repeat(1 << 20)}'`);
    expect(err.code).toBe('SQL_ERROR');
    expect(err.details.sqliteCode).toBe('SQLITE_TOOBIG');
    expect(() => run(`SELECT '${'a'.repeat((1 << 20) - 100)}' AS s`)).not.toThrow();
  });

  it('refuses strings and blobs over 64 MiB', () => {
    expect(refused('SELECT zeroblob(67108865)').details.sqliteCode).toBe('SQLITE_TOOBIG');
  });

  it('refuses more than 10000 variables but allows 999', () => {
    const vars = (n: number) => `SELECT 1 WHERE 1 IN (${Array.from({ length: n }, () => '?').join(',')})`;
    expect(() => db.prepare(vars(999))).not.toThrow();
    expect(() => db.prepare(vars(10000))).not.toThrow();
    expect(refused(vars(10001)).code).toBe('SQL_ERROR');
  });

  it('refuses more than 100 function arguments', () => {
    expect(refused(`SELECT max(${Array.from({ length: 101 }, (_, i) => i).join(',')})`).code).toBe('SQL_ERROR');
  });
});

describe('error classification', () => {
  it('keeps SQLite errors as SQL_ERROR with the SQLite code', () => {
    run('CREATE TABLE u (a UNIQUE)');
    run('INSERT INTO u VALUES (1)');
    const err = refused('INSERT INTO u VALUES (1)');
    expect(err.code).toBe('SQL_ERROR');
    expect(err.details).toEqual({ sqliteCode: 'SQLITE_CONSTRAINT_UNIQUE' });
    expect(refused('SELEC 1').details).toEqual({ sqliteCode: 'SQLITE_ERROR' });
  });

  it('does not label a later error with an old denial', () => {
    refused("ATTACH 'x.db' AS x");
    expect(refused('SELECT * FROM missing').code).toBe('SQL_ERROR');
  });

  it('maps a full database to QUOTA_EXCEEDED', () => {
    guard.trusted(() => db.pragma('max_page_count = 20'));
    const err = refused("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100000) INSERT INTO t SELECT randomblob(100) FROM c");
    expect(err.code).toBe('QUOTA_EXCEEDED');
  });
});

/** Rows per second of the runaway CTE on this machine, to size bounded queries. */
function boundedQuery(ms: number): string {
  const probe = 200_000;
  const t0 = performance.now();
  run(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ${probe}) SELECT count(*) FROM c`);
  const perMs = probe / Math.max(performance.now() - t0, 0.1);
  return `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ${Math.round(perMs * ms)}) SELECT count(*) AS n FROM c`;
}

describe('watchdog', () => {
  it('interrupts a runaway statement at the timeout and leaves the connection usable', () => {
    guard.setTimeout(200);
    const t0 = performance.now();
    const err = refused(RUNAWAY);
    const elapsed = performance.now() - t0;
    expect(err.code).toBe('QUERY_TIMEOUT');
    expect(elapsed).toBeGreaterThanOrEqual(199);
    expect(elapsed).toBeLessThan(700);
    expect(run('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    run('INSERT INTO t VALUES (1)');
    expect(run('SELECT count(*) AS n FROM t')).toEqual([{ n: 1 }]);
  });

  it('times each statement from its own start', () => {
    // Statements of ~100 ms, one after another for 1.5 s, past the 1 s timeout: a timer that ran from the
    // first statement would interrupt one. Each alone has 10× headroom (a loaded CI machine slows it, and
    // boundedQuery calibrates in a moment that may have been faster: with 300 ms against 120 ms it failed once).
    guard.setTimeout(1000);
    const q = boundedQuery(100);
    const t0 = performance.now();
    for (let n = 0; n < 200 && performance.now() - t0 < 1500; n++) expect(() => run(q)).not.toThrow();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1500);
  });

  it('does not interrupt a statement without a timeout', () => {
    guard.setTimeout(0);
    expect(() => run(boundedQuery(300))).not.toThrow();
  });

  it('interrupts a runaway inside a trigger at the outer statement timeout', () => {
    run(`CREATE TRIGGER slow AFTER INSERT ON t BEGIN SELECT count(*) FROM (${RUNAWAY}); END`);
    guard.setTimeout(150);
    const t0 = performance.now();
    expect(refused('INSERT INTO t VALUES (1)').code).toBe('QUERY_TIMEOUT');
    expect(performance.now() - t0).toBeLessThan(650);
  });

  it('interrupts only the connection that ran past its own timeout within a group', () => {
    const [a, ga] = openGuarded('a.db', { timeoutMs: 100, group: 5 });
    const [b, gb] = openGuarded('b.db', { timeoutMs: 2000, group: 5 });
    extra.push(a, b);
    const q = boundedQuery(400);
    expect(refused(RUNAWAY, a, ga).code).toBe('QUERY_TIMEOUT');
    expect(run(q, b)).toHaveLength(1);
    expect(refused(RUNAWAY, a, ga).code).toBe('QUERY_TIMEOUT');
    expect(() => gb.classify(new Error('x'))).not.toThrow();
  });

  it('survives connections closed while the watchdog runs', () => {
    for (let i = 0; i < 200; i++) {
      const [d, g] = openGuarded(`loop-${i % 4}.db`, { timeoutMs: i % 2 ? 5 : 50, group: 10 + (i % 3) });
      if (i % 2) expect(refused(RUNAWAY, d, g).code).toBe('QUERY_TIMEOUT');
      else run('SELECT 1', d); // leaves a pending deadline behind when it closes
      d.close();
    }
    expect(run('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });

  it('starts one thread per group and stops it when the group\'s last connection closes', () => {
    const base = watchdogThreads(guard);
    const [x, gx] = openGuarded('x.db', { group: 42 });
    const [y] = openGuarded('y.db', { group: 42 });
    extra.push(x, y);
    expect(watchdogThreads(gx)).toBe(base + 1);
    x.close();
    expect(watchdogThreads(guard)).toBe(base + 1);
    y.close();
    expect(watchdogThreads(guard)).toBe(base);
    db.close();
    const [probe, gp] = openGuarded('probe.db', { group: 43 });
    extra.push(probe);
    expect(watchdogThreads(gp)).toBe(base); // group 1 ended with db, group 43 started
  });
});

