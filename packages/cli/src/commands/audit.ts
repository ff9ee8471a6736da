import type { Command } from 'commander';
import type { AuditEvent } from '@domicile/client';
import { DomicileError } from '@domicile/errors';
import type { Context } from '../context.ts';
import { bytes, cell, pick, plural, table } from '../format.ts';
import { positiveInt, withConnectionOptions, type HttpOptions } from '../options.ts';

/** Entries `audit log` prints when --limit is not given: the log only grows. */
export const DEFAULT_AUDIT_LIMIT = 100;

/** `domicile audit residency` and `domicile audit log`. */
export function registerAudit(program: Command, ctx: Context): void {
  const audit = program.command('audit').description('residency audit and the audit log');

  withConnectionOptions(audit.command('residency').description("every tenant's stored bytes by region and every violation; exit 1 on a violation or an incomplete audit"))
    .action(async (opts: HttpOptions) => {
      const out = ctx.start(opts);
      const r = await ctx.client(opts).residencyAudit();
      const tenants = Array.isArray(r.tenants) ? r.tenants : [];
      const violations = Array.isArray(r.violations) ? r.violations : [];
      const incomplete: unknown[] = Array.isArray(r.incomplete) ? r.incomplete : [];
      out.result(r, () => [
        ...(tenants.length === 0 ? ['no tenants'] : table(['tenant', 'residency', 'region', 'stored bytes by region'],
          tenants.map((t) => [pick(t, 'tenant', 'id'), t.residency, t.region, byRegion(pick(t, 'bytesByRegion', 'bytes', 'regions'))]))),
        ...violations.map((v) => `VIOLATION ${describeViolation(v)}`),
        ...incomplete.map((i) => `INCOMPLETE ${cell(i)}`),
      ]);
      if (violations.length > 0) {
        out.problem(`${plural(violations.length, 'residency violation')} found`);
        ctx.exitCode = 1;
      } else if (incomplete.length > 0) {
        // An audit that could not read everything certifies nothing about what it missed.
        out.problem(`the audit is incomplete (${plural(incomplete.length, 'part')} not read)`);
        ctx.exitCode = 1;
      } else {
        out.note('no residency violations');
      }
    });

  withConnectionOptions(audit.command('log').description('the append-only audit log: placements, moves, restores, erases, revocations')
    .option('--tenant <id>', "only this tenant's events")
    .option('--limit <n>', `print at most n events (default: ${DEFAULT_AUDIT_LIMIT})`, positiveInt('--limit'))
    .option('--cursor <cursor>', 'start after this cursor (printed when more events exist)'))
    .action(async (opts: HttpOptions & { tenant?: string; limit?: number; cursor?: string }) => {
      const out = ctx.start(opts);
      const client = ctx.client(opts);
      const limit = opts.limit ?? DEFAULT_AUDIT_LIMIT;
      const events: AuditEvent[] = [];
      const seen = new Set<string>();
      let cursor = opts.cursor;
      let next: string | null = null;
      do {
        const page = await client.audit({
          ...(opts.tenant === undefined ? {} : { tenant: opts.tenant }), limit: limit - events.length,
          ...(cursor === undefined ? {} : { cursor }),
        });
        events.push(...(Array.isArray(page.events) ? page.events : []).slice(0, limit - events.length));
        next = page.nextCursor === undefined || page.nextCursor === '' ? null : page.nextCursor;
        if (next !== null && seen.has(next)) throw new DomicileError('INTERNAL', `the server repeated cursor ${next}`);
        if (next !== null) seen.add(next);
        cursor = next ?? undefined;
      } while (next !== null && events.length < limit);
      out.result({ events, nextCursor: next }, () => events.length === 0 ? ['no audit events'] : table(
        ['time', 'actor', 'action', 'tenant', 'details'],
        events.map((e) => {
          const { time, at, actor, action, type, tenant, id: _id, seq: _seq, incarnation: _inc, details, ...rest } = e as Record<string, unknown>;
          const extra = { ...(typeof details === 'object' && details !== null ? details : {}), ...rest };
          return [time ?? at, actor, action ?? type, tenant, Object.entries(extra).map(([k, v]) => `${k}=${cell(v)}`).join(' ')];
        }),
      ));
      if (next !== null && !out.json) out.note(`more events: continue with --cursor ${next}`);
    });
}

function byRegion(v: unknown): string {
  if (typeof v !== 'object' || v === null) return '-';
  return Object.entries(v as Record<string, unknown>).map(([region, b]) => {
    if (typeof b === 'number') return `${region} ${bytes(b)}`;
    if (typeof b === 'object' && b !== null) {
      const total = Object.values(b).reduce<number>((s, x) => s + (typeof x === 'number' ? x : 0), 0);
      return `${region} ${bytes(total)}`;
    }
    return region;
  }).join(', ') || '-';
}

function describeViolation(v: Record<string, unknown>): string {
  const who = pick(v, 'tenant', 'id');
  const msg = v.message;
  if (typeof msg === 'string') return who === undefined ? msg : `${String(who)}: ${msg}`;
  return JSON.stringify(v);
}
