/**
 * Group commit on a shard (DESIGN §7; docs/shards.md "Group commit"). Runs on
 * a worker. The pool hands over a tenant's queued `/query` and `/batch`
 * requests (its *members*, in arrival order) as one message; they run in one
 * write transaction, each inside its own SAVEPOINT:
 *
 * 1. BEGIN IMMEDIATE, then for each member: SAVEPOINT, its statements (and,
 *    with an Idempotency-Key, the lookup and the record), RELEASE. A member
 *    that fails is rolled back to its savepoint; its neighbours are untouched
 *    and its error is its answer.
 * 2. After the last member: the txid bump (once, if any member wrote: a group
 *    is one transaction, one txid) and COMMIT. Only then is anyone answered.
 * 3. SQLite can end the whole transaction under a member (`RAISE(ROLLBACK)`,
 *    `OR ROLLBACK`, an interrupt during a write, disk full, I/O error); the
 *    connection is then no longer in a transaction. That member's error is its
 *    answer (it fails the same way alone: its own effects are gone and it saw
 *    exactly the state its predecessors left). The members released before it
 *    lost their effects: each is replayed alone, in order, in its own
 *    transaction, and answered from that run. The members after it start a new
 *    group. A failed COMMIT is treated the same way: every member is replayed.
 *
 * A statement that must run in autocommit (PRAGMA, VACUUM) ends the group:
 * the group so far commits, it runs alone, a new group starts after it.
 * Reads run inside the group and see earlier members' writes; they are
 * answered only after the COMMIT made those writes durable, or re-run by the
 * replay, so no answer ever reflects a write that was rolled back.
 */
import type { Statement as SqliteStatement } from 'better-sqlite3';
import { DomicileError } from '@domicile/errors';
import { executeBatch, executeOne, isAutocommitOnly, rollback, runBatchBody, runQueryBody, toDomicile, wrap, type ExecLimits } from './execute.ts';
import { executeIdempotent, lookupIdempotent, recordIdempotent } from './idempotency.ts';
import type { ShardHandle } from './open-shard.ts';
import type { ExecOptions, ExecOutcome, Statement, StatementResult } from './types.ts';

/** One request of a group: what `query` and `batch` messages carry. */
export type GroupMember =
  | { kind: 'query'; statement: Statement; opts: ExecOptions }
  | { kind: 'batch'; statements: Statement[]; opts: ExecOptions };

/** A member's answer: the plain result, or an `ExecOutcome` when it has an Idempotency-Key. */
export type MemberValue = StatementResult | StatementResult[] | ExecOutcome<StatementResult | StatementResult[]>;

/** A member's outcome, in the member's position. */
export type MemberResult = { ok: true; value: MemberValue } | { ok: false; error: DomicileError };

/** How a group went, for counters and tests. */
export interface GroupStats {
  /** Transactions committed with more than one member. */
  groups: number;
  /** Members replayed alone after their group's transaction was rolled back as a whole. */
  replayed: number;
}

interface SavepointStatements {
  savepoint: SqliteStatement;
  release: SqliteStatement;
  rollbackTo: SqliteStatement;
}

const savepoints = new WeakMap<ShardHandle, SavepointStatements>();

function savepointStatements(h: ShardHandle): SavepointStatements {
  let s = savepoints.get(h);
  if (!s) {
    s = h.guard.trusted(() => ({
      savepoint: h.db.prepare('SAVEPOINT domicile_member'),
      release: h.db.prepare('RELEASE domicile_member'),
      rollbackTo: h.db.prepare('ROLLBACK TO domicile_member'),
    }));
    savepoints.set(h, s);
  }
  return s;
}

/** Whether a member can share a transaction with its neighbours. */
function groupable(m: GroupMember): boolean {
  return m.kind === 'batch' || !isAutocommitOnly(m.statement.sql);
}

/** A member as a request of its own (its own transaction): exactly the single-request path. */
export function executeMember(h: ShardHandle, m: GroupMember, limits: ExecLimits, ttlMs: number): MemberValue {
  const key = m.opts.idempotencyKey;
  if (m.kind === 'query') {
    if (key !== undefined) return executeIdempotent(h, 'query', [m.statement], { ...m.opts, idempotencyKey: key }, limits, ttlMs);
    return executeOne(h, m.statement, m.opts, limits);
  }
  if (key !== undefined) return executeIdempotent(h, 'batch', m.statements, { ...m.opts, idempotencyKey: key }, limits, ttlMs);
  return executeBatch(h, m.statements, m.opts, limits);
}

function alone(h: ShardHandle, m: GroupMember, limits: ExecLimits, ttlMs: number): MemberResult {
  try {
    return { ok: true, value: executeMember(h, m, limits, ttlMs) };
  } catch (err) {
    return { ok: false, error: toDomicile(h, err) };
  }
}

/** A member inside the open group transaction (the caller holds its savepoint). */
function runInGroup(h: ShardHandle, m: GroupMember, limits: ExecLimits, ttlMs: number, now: number): { value: MemberValue; wrote: boolean } {
  const key = m.opts.idempotencyKey;
  const statements = m.kind === 'query' ? [m.statement] : m.statements;
  let fingerprint = '';
  if (key !== undefined) {
    const found = lookupIdempotent(h, m.kind, statements, key, ttlMs, now);
    // Also finds a record an earlier member of this group wrote: answered after the COMMIT, or replayed with it.
    if (found.replay) return { value: found.replay, wrote: false };
    fingerprint = found.fingerprint;
  }
  const { result, wrote } = m.kind === 'query' ? runQueryBody(h, m.statement, m.opts, limits) : runBatchBody(h, m.statements, m.opts, limits);
  if (key === undefined) return { value: result, wrote };
  if (wrote) recordIdempotent(h, key, fingerprint, result, ttlMs, now);
  return { value: { result, replayed: false }, wrote };
}

/**
 * Run a tenant's members in arrival order as few transactions as the rules in
 * the file comment allow. Never throws: every member gets a result.
 */
export function executeGroup(h: ShardHandle, members: readonly GroupMember[], limits: ExecLimits, ttlMs: number, stats?: GroupStats): MemberResult[] {
  const out: MemberResult[] = new Array<MemberResult>(members.length);
  let i = 0;
  while (i < members.length) i = runGroup(h, members, i, out, limits, ttlMs, stats);
  return out;
}

/** One transaction from `start`; returns the index of the first member it did not answer. */
function runGroup(h: ShardHandle, members: readonly GroupMember[], start: number, out: MemberResult[], limits: ExecLimits, ttlMs: number, stats?: GroupStats): number {
  const first = members[start]!;
  // Alone: the last member (a group of one pays no savepoint), or one that needs autocommit.
  if (start === members.length - 1 || !groupable(first) || !groupable(members[start + 1]!)) {
    out[start] = alone(h, first, limits, ttlMs);
    return start + 1;
  }
  const sp = savepointStatements(h);
  try {
    wrap(h, () => h.guard.trusted(() => h.own.beginImmediate.run()));
  } catch {
    // Cannot open the group (the file is busy or broken): each member tries alone and reports its own error.
    out[start] = alone(h, first, limits, ttlMs);
    return start + 1;
  }
  const now = Date.now();
  const released: { index: number; value: MemberValue }[] = [];
  let wrote = false;
  let lost = false;
  let j = start;
  for (; j < members.length && !lost; j++) {
    const m = members[j]!;
    if (!groupable(m)) break;
    try {
      wrap(h, () => h.guard.trusted(() => sp.savepoint.run()));
      const r = runInGroup(h, m, limits, ttlMs, now);
      wrap(h, () => h.guard.trusted(() => sp.release.run()));
      released.push({ index: j, value: r.value });
      wrote ||= r.wrote;
    } catch (err) {
      out[j] = { ok: false, error: toDomicile(h, err) };
      if (!h.db.inTransaction) {
        lost = true;
        continue;
      }
      try {
        h.guard.trusted(() => {
          sp.rollbackTo.run();
          sp.release.run();
        });
      } catch {
        // The savepoint cannot be undone alone: give up the transaction and replay.
        rollback(h);
        lost = true;
      }
    }
  }
  if (!lost) {
    try {
      wrap(h, () => h.guard.trusted(() => {
        if (!h.db.inTransaction) throw new DomicileError('INTERNAL', 'group transaction ended unexpectedly');
        if (wrote) h.own.bumpTxid.run();
        h.own.commit.run();
      }));
      for (const r of released) out[r.index] = { ok: true, value: r.value };
      if (stats && j - start > 1) stats.groups++;
      return j;
    } catch {
      rollback(h);
    }
  }
  // The transaction is gone: nobody was answered yet; replay the released members alone, in order.
  for (const r of released) {
    out[r.index] = alone(h, members[r.index]!, limits, ttlMs);
    if (stats) stats.replayed++;
  }
  return j;
}
