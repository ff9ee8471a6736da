import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { isExplain, splitStatements, statementParams } from './hrana-sql.ts';

/** Binds one distinct value per parameter index the way `statementParams` says they are named (10 × index). */
function bindAsDescribed(sql: string): unknown[] {
  const names = statementParams(sql);
  const positional: number[] = [];
  const named: Record<string, number> = {};
  names.forEach((name, k) => {
    if (name === null) positional.push(10 * (k + 1));
    else named[name.slice(1)] = 10 * (k + 1);
  });
  // better-sqlite3 refuses a missing, extra or unknown parameter: SQLite itself checks the description.
  return new Database(':memory:').prepare(sql).raw().get(positional, named) as unknown[];
}

describe('splitStatements', () => {
  it('splits where SQLite would: not inside strings, quoted names, comments or trigger bodies', () => {
    const script = `
      CREATE TABLE "a;b" (k TEXT, [v;w] INT, \`x;y\` BLOB); -- a comment; with a semicolon
      INSERT INTO "a;b" VALUES ('it''s; here', 1, x'00');
      /* block; comment */ ;;
      CREATE TEMP TRIGGER t AFTER INSERT ON "a;b" BEGIN
        UPDATE "a;b" SET [v;w] = CASE WHEN new.k = 'end;' THEN 2 ELSE 3 END WHERE rowid = new.rowid;
        SELECT 1;
      END;
      INSERT INTO "a;b" (k) VALUES ('end;')`;
    const parts = splitStatements(script);
    expect(parts).toHaveLength(4);
    expect(parts[0]).toMatch(/^\s*CREATE TABLE "a;b"/);
    expect(parts[2]).toMatch(/CREATE TEMP TRIGGER[\s\S]*SELECT 1;\s*END$/);
    expect(parts[3]).toMatch(/VALUES \('end;'\)$/);

    // Oracle: SQLite prepares each part as exactly one statement, and the parts leave what exec(script) leaves.
    const one = new Database(':memory:');
    for (const p of parts) one.prepare(p).run();
    const all = new Database(':memory:');
    all.exec(script);
    const dump = (db: Database.Database) => db.prepare('SELECT k, "v;w" FROM "a;b" ORDER BY rowid').raw().all();
    expect(dump(one)).toEqual(dump(all));
    expect(dump(one)).toEqual([["it's; here", 1], ['end;', 2]]);
  });

  it('keeps EXPLAIN CREATE TRIGGER whole and drops empty statements', () => {
    expect(splitStatements('EXPLAIN CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; END; SELECT 2;')).toEqual([
      'EXPLAIN CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; END',
      ' SELECT 2',
    ]);
    expect(splitStatements(' ; -- nothing\n ; /* */')).toEqual([]);
    expect(splitStatements('')).toEqual([]);
    // An unterminated string runs to the end (SQLite then reports the error on prepare).
    expect(splitStatements("SELECT 'a; SELECT 2")).toEqual(["SELECT 'a; SELECT 2"]);
  });
});

describe('statementParams', () => {
  it('numbers parameters as SQLite does (checked by binding through SQLite)', () => {
    const sql = 'SELECT ?, :a, ?5, :a, @b, $c, ?, ?02, #x, ?';
    expect(statementParams(sql)).toEqual([null, ':a', null, null, '?5', '@b', '$c', null, '#x', null]);
    expect(bindAsDescribed(sql)).toEqual([10, 20, 50, 20, 60, 70, 80, 20, 90, 100]);
  });

  it('ignores parameter-like text in strings, names and comments, and stops at the first statement', () => {
    const sql = `SELECT ':no', "?", [@no], ? /* :no */, :yes -- ?\n FROM (SELECT 1 AS "?", 2 AS [@no]); SELECT ?`;
    expect(statementParams(sql)).toEqual([null, ':yes']);
    expect(bindAsDescribed(splitStatements(sql)[0]!)).toEqual([':no', 1, 2, 10, 20]);
    expect(statementParams('SELECT 1')).toEqual([]);
    expect(statementParams('SELECT ?3')).toEqual([null, null, '?3']);
  });

  it('tells EXPLAIN statements', () => {
    expect(isExplain('  -- c\n explain query plan SELECT 1')).toBe(true);
    expect(isExplain('EXPLAIN SELECT 1')).toBe(true);
    expect(isExplain('SELECT 1 -- explain')).toBe(false);
    expect(isExplain("SELECT 'explain'")).toBe(false);
  });
});
