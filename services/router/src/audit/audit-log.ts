import type Database from 'better-sqlite3';
import { openControlFile } from '../control-file.ts';
import { DomicileError } from '@domicile/errors';

/** One audit event (invariant 5). */
export interface AuditEvent {
  seq: number;
  /** RFC 3339. */
  time: string;
  /** Admin token name, `tenant:<id>`, or `system`. */
  actor: string;
  /** `tenant.create`, `tenant.erase`, `token.revoke`, `tenant.move`, `tenant.restore`, ... */
  action: string;
  tenant: string | null;
  incarnation: string | null;
  details: Record<string, unknown>;
}

/** A page of events, newest first. */
export interface AuditPage {
  events: AuditEvent[];
  nextCursor?: string;
}

/**
 * Append-only audit log in a SQLite file. Triggers refuse UPDATE and DELETE, so even a bug here
 * cannot rewrite history; the schema version is part of the table name.
 */
export class AuditLog {
  readonly #db: InstanceType<typeof Database>;
  readonly #insert;
  readonly #page;

  constructor(file: string) {
    this.#db = openControlFile(file);
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS audit_v1 (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        tenant TEXT, incarnation TEXT, details TEXT NOT NULL) STRICT;
      CREATE INDEX IF NOT EXISTS audit_v1_tenant ON audit_v1 (tenant, seq);
      CREATE TRIGGER IF NOT EXISTS audit_v1_no_update BEFORE UPDATE ON audit_v1 BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
      CREATE TRIGGER IF NOT EXISTS audit_v1_no_delete BEFORE DELETE ON audit_v1 BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;`);
    this.#insert = this.#db.prepare('INSERT INTO audit_v1 (time, actor, action, tenant, incarnation, details) VALUES (?, ?, ?, ?, ?, ?)');
    this.#page = this.#db.prepare<Record<string, unknown>, { seq: number; time: string; actor: string; action: string; tenant: string | null; incarnation: string | null; details: string }>(
      `SELECT * FROM audit_v1 WHERE seq < @before AND (@tenant IS NULL OR tenant = @tenant) ORDER BY seq DESC LIMIT @limit`);
  }

  /** Appends an event and returns it with its sequence number. */
  append(e: { actor: string; action: string; tenant?: string; incarnation?: string; details?: Record<string, unknown> }): AuditEvent {
    const time = new Date().toISOString();
    const details = e.details ?? {};
    const info = this.#insert.run(time, e.actor, e.action, e.tenant ?? null, e.incarnation ?? null, JSON.stringify(details));
    return { seq: Number(info.lastInsertRowid), time, actor: e.actor, action: e.action, tenant: e.tenant ?? null, incarnation: e.incarnation ?? null, details };
  }

  /** Events newest first, optionally of one tenant. */
  list(q: { tenant?: string; limit: number; cursor?: string }): AuditPage {
    let before = Number.MAX_SAFE_INTEGER;
    if (q.cursor !== undefined) {
      if (!/^\d{1,15}$/.test(q.cursor)) throw new DomicileError('BAD_REQUEST', 'cursor is not valid', { field: 'cursor' });
      before = Number(q.cursor);
    }
    const rows = this.#page.all({ before, tenant: q.tenant ?? null, limit: q.limit + 1 });
    const events = rows.slice(0, q.limit).map((r) => ({ ...r, details: JSON.parse(r.details) as Record<string, unknown> }));
    const last = events.at(-1);
    return rows.length > q.limit && last ? { events, nextCursor: String(last.seq) } : { events };
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
