/**
 * Liveness of the pool's scheduler under a random mix of fast writes, slow
 * and runaway statements (which make workers look stuck, so parts are taken
 * back), batches and interactive sessions: every request settles, and every
 * acknowledged write is in its tenant's table exactly once. Skip answers are
 * delayed (test hook) so they often arrive after everything else, which is
 * when a missed wake-up strands a tenant.
 *
 * The mix is drawn from a seeded generator; a failure names the seed
 * (DOMICILE_LIVENESS_SEED=<seed> replays it).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { seededRandom } from '@domicile/testkit/random';
import { ShardPool } from './shard-pool.ts';
import { shardPath } from './shard-path.ts';
import type { ShardRef } from './types.ts';

const RUNAWAY = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c';
/** A few tens of milliseconds of SQLite CPU: long enough for the scheduler to call its worker stuck. */
const SLOWISH = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 150000) SELECT count(*) FROM c';


const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Outcome = { ok: true } | { ok: false; code: string };

const ROUNDS = 8;
const OPS_PER_ROUND = 40;

async function runMix(seed: number, messagesPerWorker: number): Promise<void> {
  const random = seededRandom(seed);
  const dir = mkdtempSync(join(tmpdir(), 'domicile-liveness-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const pool = new ShardPool({
    workers: 2, maxOpenShards: 8, statementTimeoutMs: 150, maxResultBytes: 1 << 20, maxDbBytes: 1 << 26,
    messagesPerWorker, maxPartsPerMessage: 4, testSkipDelayMs: 30,
  });
  cleanups.push(() => pool.close());
  await pool.start();
  const tenants: ShardRef[] = Array.from({ length: 12 }, (_, i) => ({ tenant: `t${i}`, incarnation: `inc-${i}`, path: shardPath(dir, `t${i}`), epoch: 1 }));
  for (const t of tenants) {
    await pool.create(t);
    await pool.query(t, { sql: 'CREATE TABLE log (v TEXT)' });
  }

  const expected = new Map<string, string[]>(tenants.map((t) => [t.tenant, []]));
  // Several short rounds: a stranded request shows when its round ends with nothing else left to wake the scheduler.
  for (let round = 0; round < ROUNDS; round++) {
    const pending: Promise<{ what: string; outcome: Outcome }>[] = [];
    const track = (what: string, p: Promise<unknown>, acknowledged: () => void = () => {}) => {
      pending.push(p.then(
        () => {
          acknowledged();
          return { what, outcome: { ok: true } as Outcome };
        },
        (e: { code?: string }) => ({ what, outcome: { ok: false, code: String(e?.code ?? e) } as Outcome }),
      ));
    };
    for (let k = 0; k < OPS_PER_ROUND; k++) {
      const t = tenants[Math.floor(random() * tenants.length)]!;
      const r = random();
      const v = `v${round}.${k}`;
      if (r < 0.6) {
        track(`insert ${v}`, pool.query(t, { sql: 'INSERT INTO log VALUES (?)', params: [v] }), () => expected.get(t.tenant)!.push(v));
      } else if (r < 0.72) {
        track(`batch ${v}`, pool.batch(t, [{ sql: 'INSERT INTO log VALUES (?)', params: [`${v}a`] }, { sql: 'INSERT INTO log VALUES (?)', params: [`${v}b`] }]),
          () => expected.get(t.tenant)!.push(`${v}a`, `${v}b`));
      } else if (r < 0.84) {
        track(`slow ${v}`, pool.query(t, { sql: SLOWISH }));
      } else if (r < 0.9) {
        track(`runaway ${v}`, pool.query(t, { sql: RUNAWAY }));
      } else {
        track(`session ${v}`, (async () => {
          const id = await pool.openSession(t);
          try {
            await pool.sessionExecute(id, { sql: 'INSERT INTO log VALUES (?)', params: [v] });
            expected.get(t.tenant)!.push(v);
          } finally {
            await pool.closeSession(id);
          }
        })());
      }
      // Requests arrive over many event-loop turns, sometimes with a pause, so messages and take-backs interleave.
      const pause = random();
      if (pause < 0.3) await new Promise((res) => setImmediate(res));
      else if (pause < 0.4) await new Promise((res) => setTimeout(res, Math.floor(random() * 15)));
    }

    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'stalled'>((res) => (timer = setTimeout(() => res('stalled'), 10_000)));
    const settled = await Promise.race([Promise.all(pending), deadline]);
    clearTimeout(timer);
    expect(settled, `seed ${seed}, round ${round}: requests left unanswered (queued ${pool.stats().queued})`).not.toBe('stalled');
    for (const { what, outcome } of settled as { what: string; outcome: Outcome }[]) {
      if (what.startsWith('runaway')) expect(outcome, `seed ${seed}: ${what}`).toEqual({ ok: false, code: 'QUERY_TIMEOUT' });
      // On a loaded machine a slow statement may pass the timeout too; it writes nothing either way.
      else if (what.startsWith('slow')) expect([{ ok: true }, { ok: false, code: 'QUERY_TIMEOUT' }], `seed ${seed}: ${what}`).toContainEqual(outcome);
      else expect(outcome, `seed ${seed}: ${what}`).toEqual({ ok: true });
    }
  }
  for (const t of tenants) {
    const rows = await pool.query(t, { sql: 'SELECT v FROM log' });
    expect(rows.rows.map((row) => row[0]).sort(), `seed ${seed}: tenant ${t.tenant}`).toEqual([...expected.get(t.tenant)!].sort());
  }
}

describe('ShardPool scheduler liveness', () => {
  const base = Number(process.env.DOMICILE_LIVENESS_SEED ?? Date.now() % 1_000_000);
  it.each([1, 2])('answers every request of a random mix with runaways, take-backs and sessions (%i message(s) per worker)', async (messagesPerWorker) => {
    await runMix(base + messagesPerWorker, messagesPerWorker);
  }, 60_000);
});
