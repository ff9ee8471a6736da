import { Option, type Command } from 'commander';
import { DomicileError } from '@domicile/errors';
import type { Durability, Tenant } from '@domicile/client';
import type { Context } from '../context.ts';
import { UsageError } from '../exit-codes.ts';
import { keyValues, plural, table } from '../format.ts';
import { positiveInt, withConnectionOptions, type HttpOptions } from '../options.ts';

/** `domicile tenant create|show|list|erase`. */
export function registerTenant(program: Command, ctx: Context): void {
  const tenant = program.command('tenant').description('create, show, list and erase tenants');

  withConnectionOptions(tenant.command('create <id>').description('create a tenant (its own SQLite database) under a residency class')
    .requiredOption('--residency <name>', 'residency class of the policy (eu, us, any, ...)')
    .option('--region <region>', "region to create it in (default: the residency's default, or the tenant's pin)")
    .addOption(new Option('--durability <mode>', 'acknowledge writes after the local commit (async) or once in the bucket (sync)').choices(['async', 'sync'])))
    .action(async (id: string, opts: HttpOptions & { residency: string; region?: string; durability?: Durability }) => {
      const out = ctx.start(opts);
      const t = await ctx.client(opts).createTenant({
        id, residency: opts.residency,
        ...(opts.region === undefined ? {} : { region: opts.region }),
        ...(opts.durability === undefined ? {} : { durability: opts.durability }),
      });
      out.done(t, [`created tenant ${t.id} in ${t.region}`, ...keyValues(t)]);
    });

  withConnectionOptions(tenant.command('show <id>').description("a tenant's placement and replication state"))
    .action(async (id: string, opts: HttpOptions) => {
      const out = ctx.start(opts);
      const t = await ctx.client(opts).getTenant(id);
      out.result(t, keyValues(t));
    });

  withConnectionOptions(tenant.command('list').description('list tenants as a table, following every page')
    .option('--region <region>', 'only tenants living in this region')
    .option('--residency <name>', 'only tenants of this residency class')
    .option('--limit <n>', 'print at most n tenants (default: all)', positiveInt('--limit'))
    .option('--cursor <cursor>', 'start after this cursor (printed when --limit stops early)'))
    .action(async (opts: HttpOptions & { region?: string; residency?: string; limit?: number; cursor?: string }) => {
      const out = ctx.start(opts);
      const client = ctx.client(opts);
      const tenants: Tenant[] = [];
      const seen = new Set<string>();
      let cursor = opts.cursor;
      let next: string | null = null;
      do {
        const want = opts.limit === undefined ? undefined : opts.limit - tenants.length;
        const page = await client.listTenants({
          ...(opts.region === undefined ? {} : { region: opts.region }),
          ...(opts.residency === undefined ? {} : { residency: opts.residency }),
          ...(want === undefined ? {} : { limit: want }),
          ...(cursor === undefined ? {} : { cursor }),
        });
        tenants.push(...(want === undefined ? page.tenants : page.tenants.slice(0, want)));
        next = page.nextCursor === undefined || page.nextCursor === '' ? null : page.nextCursor;
        if (next !== null && seen.has(next)) throw new DomicileError('INTERNAL', `the server repeated cursor ${next}`);
        if (next !== null) seen.add(next);
        cursor = next ?? undefined;
      } while (next !== null && (opts.limit === undefined || tenants.length < opts.limit));
      out.result({ tenants, nextCursor: next }, () => tenants.length === 0 ? ['no tenants'] : table(
        ['id', 'residency', 'region', 'node', 'epoch', 'state', 'durability', 'created'],
        tenants.map((t) => [t.id, t.residency, t.region, t.node, t.epoch, t.state, t.durability, t.createdAt]),
      ));
      if (next !== null && !out.json) out.note(`more tenants: continue with --cursor ${next}`);
    });

  withConnectionOptions(tenant.command('erase <id>').description('erase a tenant: its database and every backup in every region, for good')
    .option('-y, --yes', 'do not ask for confirmation (required when stdin is not a terminal)'))
    .action(async (id: string, opts: HttpOptions & { yes?: boolean }) => {
      const out = ctx.start(opts);
      if (opts.yes !== true) {
        if (!ctx.io.stdinIsTTY) throw new UsageError(`refusing to erase ${id} without --yes: stdin is not a terminal to confirm on`);
        const answer = await ctx.io.prompt(`Erase tenant ${id}, its database and every backup in every region? This cannot be undone.\nType the tenant id to confirm: `);
        if (answer.trim() !== id) {
          out.problem(`not confirmed: tenant ${id} was not erased`);
          ctx.exitCode = 1;
          return;
        }
      }
      const r = await ctx.client(opts).eraseTenant(id);
      out.done(r, [`erased tenant ${id}: ${plural(r.erased.files, 'file')}, ${plural(r.erased.bucketObjects, 'bucket object')}`]);
    });
}
