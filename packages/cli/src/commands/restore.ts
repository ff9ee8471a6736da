import type { Command } from 'commander';
import type { Context } from '../context.ts';
import { UsageError } from '../exit-codes.ts';
import { cell, pick, table } from '../format.ts';
import { nonNegativeInt, withConnectionOptions, type HttpOptions } from '../options.ts';

interface RestoreOptions extends HttpOptions {
  at?: string;
  txid?: number;
  as?: string;
}

/**
 * `domicile restore TENANT (--at TIME | --txid N) [--as NEW]` and `domicile backups TENANT`.
 * The offline disaster-recovery form (`restore TENANT --from BUCKET_URL --out FILE`)
 * will branch off this same command on `--from`, before any connection is made.
 */
export function registerRestore(program: Command, ctx: Context): void {
  withConnectionOptions(program.command('restore <tenant>').description('restore a tenant to a point in time or a txid, in place or into a new tenant')
    .option('--at <time>', 'RFC 3339 time, e.g. 2025-06-01T12:00:00Z')
    .option('--txid <n>', 'transaction id to restore to', nonNegativeInt('--txid'))
    .option('--as <new-tenant>', 'fork into this new tenant (same region) and leave the original as it is'))
    .action(async (tenant: string, opts: RestoreOptions) => {
      if ((opts.at === undefined) === (opts.txid === undefined)) throw new UsageError('restore needs exactly one of --at TIME or --txid N');
      let at: string | undefined;
      if (opts.at !== undefined) {
        const ms = Date.parse(opts.at);
        if (Number.isNaN(ms)) throw new UsageError(`--at ${JSON.stringify(opts.at)} is not a time (expected RFC 3339, e.g. 2025-06-01T12:00:00Z)`);
        at = new Date(ms).toISOString();
      }
      const out = ctx.start(opts);
      const r = await ctx.client(opts).restore(tenant, {
        ...(at === undefined ? {} : { at }),
        ...(opts.txid === undefined ? {} : { txid: opts.txid }),
        ...(opts.as === undefined ? {} : { as: opts.as }),
      });
      const target = opts.as === undefined ? `restored ${tenant}` : `restored ${tenant} as ${r.tenant}`;
      out.done(r, [`${target} to txid ${r.txid} (${r.time})`]);
    });

  withConnectionOptions(program.command('backups <tenant>').description("list a tenant's backup generations"))
    .action(async (tenant: string, opts: HttpOptions) => {
      const out = ctx.start(opts);
      const r = await ctx.client(opts).backups(tenant);
      const gens = Array.isArray(r.generations) ? r.generations : [];
      out.result(r, () => gens.length === 0 ? [`no backups of ${tenant}`] : table(
        ['generation', 'epoch', 'region', 'snapshots', 'segments', 'first txid', 'last txid', 'first time', 'last time'],
        gens.map((g) => {
          const snaps = pick(g, 'snapshots', 'snapshotCount');
          return [
            pick(g, 'generation', 'id'), g.epoch, g.region, Array.isArray(snaps) ? snaps.length : cell(snaps),
            pick(g, 'segments', 'segmentCount'), g.firstTxid, g.lastTxid, pick(g, 'firstTime', 'firstAt'), pick(g, 'lastTime', 'lastAt'),
          ];
        }),
      ));
    });
}
