/**
 * Just enough of SQLite's tokenizer for Hrana `sequence` and `describe`:
 * splitting a script into statements where SQLite would (the state machine
 * of `sqlite3_complete`, so a `;` inside a string, a comment or a CREATE
 * TRIGGER body does not split), and listing a statement's parameters the way
 * `sqlite3_bind_parameter_count`/`_name` would (better-sqlite3 does not
 * expose them). It never decides what may run: the statement guard does, on
 * each statement, when the shard prepares it.
 */

type TokenKind = 'semi' | 'ws' | 'id' | 'variable' | 'other';

interface Token {
  kind: TokenKind;
  start: number;
  end: number;
}

const isSpace = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\f' || c === '\r';
const isDigit = (c: string) => c >= '0' && c <= '9';
/** SQLite's IdChar: ASCII letters, digits, `_`, `$`, and every non-ASCII character. */
const isIdChar = (c: string) => /[A-Za-z0-9_$]/.test(c) || c.charCodeAt(0) >= 0x80;
const isIdStart = (c: string) => /[A-Za-z_]/.test(c) || c.charCodeAt(0) >= 0x80;

/** The tokens of `sql`, in order, covering all of it. */
function* tokens(sql: string): Generator<Token> {
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const start = i;
    const c = sql[i]!;
    let kind: TokenKind = 'other';
    if (isSpace(c)) {
      while (i < n && isSpace(sql[i]!)) i++;
      kind = 'ws';
    } else if (c === '-' && sql[i + 1] === '-') {
      while (i < n && sql[i] !== '\n') i++;
      kind = 'ws';
    } else if (c === '/' && sql[i + 1] === '*') {
      const close = sql.indexOf('*/', i + 2);
      i = close < 0 ? n : close + 2;
      kind = 'ws';
    } else if (c === ';') {
      i++;
      kind = 'semi';
    } else if (c === "'" || c === '"' || c === '`') {
      // A string or quoted identifier; a doubled quote is an escaped one. Unterminated: to the end.
      i++;
      while (i < n) {
        if (sql[i] === c) {
          if (sql[i + 1] === c) i += 2;
          else {
            i++;
            break;
          }
        } else i++;
      }
    } else if (c === '[') {
      const close = sql.indexOf(']', i + 1);
      i = close < 0 ? n : close + 1;
    } else if (c === '?') {
      i++;
      while (i < n && isDigit(sql[i]!)) i++;
      kind = 'variable';
    } else if (c === ':' || c === '@' || c === '$' || c === '#') {
      // Named parameters (this SQLite is built without Tcl's `$a::b(c)` forms).
      let j = i + 1;
      while (j < n && isIdChar(sql[j]!)) j++;
      if (j > i + 1) kind = 'variable';
      i = kind === 'variable' ? j : i + 1;
    } else if (isIdStart(c)) {
      while (i < n && isIdChar(sql[i]!)) i++;
      kind = 'id';
    } else if (isDigit(c) || (c === '.' && isDigit(sql[i + 1] ?? ''))) {
      while (i < n && (isIdChar(sql[i]!) || sql[i] === '.' || ((sql[i] === '+' || sql[i] === '-') && /[eE]/.test(sql[i - 1]!)))) i++;
    } else {
      i++;
    }
    yield { kind, start, end: i };
  }
}

/** Tokens of `sqlite3_complete`'s state machine. */
const enum Tk { Semi, Ws, Other, Explain, Create, Temp, Trigger, End }

/** `sqlite3_complete`'s transitions: [state][token] → state. State 1 after a `;` = a statement ended. */
const TRANS: readonly (readonly number[])[] = [
  /* 0 INVALID */ [1, 0, 2, 3, 4, 2, 2, 2],
  /* 1 START   */ [1, 1, 2, 3, 4, 2, 2, 2],
  /* 2 NORMAL  */ [1, 2, 2, 2, 2, 2, 2, 2],
  /* 3 EXPLAIN */ [1, 3, 3, 2, 4, 2, 2, 2],
  /* 4 CREATE  */ [1, 4, 2, 2, 2, 4, 5, 2],
  /* 5 TRIGGER */ [6, 5, 5, 5, 5, 5, 5, 5],
  /* 6 SEMI    */ [6, 6, 5, 5, 5, 5, 5, 7],
  /* 7 END     */ [1, 7, 5, 5, 5, 5, 5, 5],
];

function classify(sql: string, t: Token): Tk {
  if (t.kind === 'semi') return Tk.Semi;
  if (t.kind === 'ws') return Tk.Ws;
  if (t.kind !== 'id') return Tk.Other;
  switch (sql.slice(t.start, t.end).toLowerCase()) {
    case 'explain': return Tk.Explain;
    case 'create': return Tk.Create;
    case 'temp':
    case 'temporary': return Tk.Temp;
    case 'trigger': return Tk.Trigger;
    case 'end': return Tk.End;
    default: return Tk.Other;
  }
}

/**
 * The statements of a script, in order, without their `;`. Statements made of
 * nothing but whitespace and comments are left out (SQLite prepares nothing
 * for them); a last statement without `;` counts.
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let state = 0;
  let from = 0;
  let blank = true;
  for (const t of tokens(sql)) {
    const tk = classify(sql, t);
    state = TRANS[state]![tk]!;
    if (tk === Tk.Semi && state === 1) {
      if (!blank) out.push(sql.slice(from, t.start));
      from = t.end;
      blank = true;
    } else if (tk !== Tk.Ws && tk !== Tk.Semi) {
      blank = false;
    }
  }
  if (!blank) out.push(sql.slice(from));
  return out;
}

/** The statement starts with EXPLAIN (`EXPLAIN` or `EXPLAIN QUERY PLAN`): `sqlite3_stmt_isexplain` ≠ 0. */
export function isExplain(sql: string): boolean {
  for (const t of tokens(sql)) {
    if (t.kind === 'ws') continue;
    return t.kind === 'id' && sql.slice(t.start, t.end).toLowerCase() === 'explain';
  }
  return false;
}

/** SQLite's default SQLITE_MAX_VARIABLE_NUMBER. */
const MAX_VARIABLE_NUMBER = 32766;

/**
 * The parameters of one statement as SQLite numbers them
 * (`sqlite3ExprAssignVarNumber`): index i-1 holds parameter i's name, `null`
 * for a bare `?` or an index no parameter uses. `?NNN` is named `?NNN` (as
 * first written); `:a`, `@a`, `$a`, `#a` keep their prefix; a repeated name reuses
 * its index. Only the first statement of `sql` counts, as for a prepare.
 */
export function statementParams(sql: string): (string | null)[] {
  const names = new Map<number, string>();
  const byName = new Map<string, number>();
  let count = 0;
  for (const t of tokens(sql)) {
    if (t.kind === 'semi') break;
    if (t.kind !== 'variable') continue;
    const z = sql.slice(t.start, t.end);
    if (z === '?') {
      count++;
    } else if (z[0] === '?') {
      const i = Number(z.slice(1));
      if (!Number.isInteger(i) || i < 1 || i > MAX_VARIABLE_NUMBER) continue; // SQLite refuses it at prepare
      if (i > count) count = i;
      if (!names.has(i)) {
        names.set(i, z);
        if (!byName.has(z)) byName.set(z, i);
      }
    } else {
      const known = byName.get(z);
      if (known !== undefined) continue;
      count++;
      names.set(count, z);
      byName.set(z, count);
    }
  }
  return Array.from({ length: count }, (_, k) => names.get(k + 1) ?? null);
}
