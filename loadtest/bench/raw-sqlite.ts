/**
 * The storage ceiling: the scenario's statements run by better-sqlite3
 * in-process on one thread, one file per tenant, the pragmas Domicile's shards
 * use, statements prepared once per handle. No HTTP, no threads, no guard.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { CACHE_SIZE_KIB, WAL_AUTOCHECKPOINT_PAGES } from '../../packages/shard/src/open-shard.ts';
import { requestStream, type Scenario, type ScenarioFile } from './scenarios.ts';
import type { TargetResult } from './load.ts';

/** Hard bound on operations per run (keeps the latency array bounded). */
const MAX_OPS = 5_000_000;

interface Handle { db: Database.Database; write: Database.Statement; read: Database.Statement }

/** Open handles of the raw baseline, one per tenant file under `dir`. */
export class RawShards {
  readonly #file: ScenarioFile;
  readonly #dir: string;
  readonly #handles = new Map<string, Handle>();

  constructor(file: ScenarioFile, dir: string) {
    this.#file = file;
    this.#dir = dir;
    mkdirSync(dir, { recursive: true });
  }

  /** Opens (creating and seeding when new) the files of `tenants`. */
  open(tenants: readonly string[]): void {
    for (const t of tenants) {
      if (this.#handles.has(t)) continue;
      const db = new Database(path.join(this.#dir, `${t}.db`));
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('temp_store = MEMORY');
      db.pragma(`cache_size = -${CACHE_SIZE_KIB}`);
      db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
      db.transaction(() => { for (const sql of this.#file.schema) db.exec(sql); })();
      this.#handles.set(t, { db, write: db.prepare(this.#file.operations.write.sql), read: db.prepare(this.#file.operations.read.sql) });
    }
  }

  /**
   * Runs one scenario operation (`sql` must be the write or the read of the
   * scenario file) on `tenant`'s file, opening it first when new: what the
   * fastify + SQLite bound (baseline-server.ts `sqlite`) does per request.
   * Returns the rows of a read, or the write's changes and rowid.
   */
  execute(tenant: string, sql: string, params: readonly unknown[]): { rows: unknown[][]; rowsAffected: number; lastInsertRowid: number | bigint | null } {
    if (!this.#handles.has(tenant)) this.open([tenant]);
    const h = this.#handles.get(tenant)!;
    if (sql === this.#file.operations.write.sql) {
      const info = h.write.run(...params);
      return { rows: [], rowsAffected: info.changes, lastInsertRowid: info.lastInsertRowid };
    }
    if (sql === this.#file.operations.read.sql) return { rows: h.read.raw(true).all(...params) as unknown[][], rowsAffected: 0, lastInsertRowid: null };
    throw new Error('not a scenario statement');
  }

  /** Runs the scenario's stream over `tenants` for `durationSeconds`, one statement at a time. */
  run(mix: Scenario['mix'], tenants: readonly string[], durationSeconds: number): TargetResult {
    this.open(tenants);
    const next = requestStream(this.#file, mix, tenants);
    const lat = new Float64Array(MAX_OPS);
    let n = 0;
    const t0 = performance.now();
    const end = t0 + durationSeconds * 1000;
    let now = t0;
    while (now < end && n < MAX_OPS) {
      const p = next();
      const h = this.#handles.get(p.tenant)!;
      if (p.kind === 'write') h.write.run(...p.params);
      else h.read.get(...p.params);
      const after = performance.now();
      lat[n++] = after - now;
      now = after;
    }
    const elapsed = (now - t0) / 1000;
    const sorted = lat.subarray(0, n).sort();
    const pct = (q: number) => sorted[Math.min(n - 1, Math.floor(q * n))] ?? 0;
    return { opsPerSec: n / elapsed, p50Ms: pct(0.5), p99Ms: pct(0.99), ok: n, errors: 0, durationSeconds: elapsed };
  }

  close(): void {
    for (const h of this.#handles.values()) h.db.close();
    this.#handles.clear();
  }
}
