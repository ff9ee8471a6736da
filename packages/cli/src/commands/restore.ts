import type { Command } from 'commander';
import type { Context } from '../context.ts';
import { UsageError } from '../exit-codes.ts';
import { bytes, cell, pick, table } from '../format.ts';
import { nonNegativeInt, withConnectionOptions, type HttpOptions } from '../options.ts';

interface RestoreOptions extends HttpOptions {
  at?: string;
  txid?: number;
  as?: string;
  from?: string;
  out?: string;
  incarnation?: string;
  generation?: string;
  force?: boolean;
}

/**
 * `domicile restore TENANT (--at TIME | --txid N) [--as NEW]` and `domicile backups TENANT`.
 * The offline disaster-recovery form (`restore TENANT --from BUCKET_URL --out FILE`)
 * branches off this same command on `--from`, before any connection is made.
 */
export function registerRestore(program: Command, ctx: Context): void {
  withConnectionOptions(program.command('restore <tenant>').description('restore a tenant to a point in time or a txid, in place or into a new tenant')
    .option('--at <time>', 'RFC 3339 time, e.g. 2025-06-01T12:00:00Z')
    .option('--txid <n>', 'transaction id to restore to', nonNegativeInt('--txid'))
    .option('--as <new-tenant>', 'fork into this new tenant (same region) and leave the original as it is')
    .option('--from <bucket-url>', 'offline: restore from this bucket alone (file:///path or s3://bucket/prefix?endpoint=...), no node needed')
    .option('--out <file>', 'offline: the SQLite file to write (with --from)')
    .option('--incarnation <id>', 'offline: which incarnation of the tenant id (required when the bucket holds several)')
    .option('--generation <id>', 'offline: which generation (default: the newest with a snapshot holding the target)')
    .option('--force', 'offline: replace an existing --out file'))
    .action(async (tenant: string, opts: RestoreOptions) => {
      if (opts.from !== undefined) return restoreOffline(ctx, tenant, opts);
      if (opts.out !== undefined || opts.incarnation !== undefined || opts.generation !== undefined || opts.force !== undefined) {
        throw new UsageError('--out, --incarnation, --generation and --force go with --from BUCKET_URL (offline restore)');
      }
      if ((opts.at === undefined) === (opts.txid === undefined)) throw new UsageError('restore needs exactly one of --at TIME or --txid N');
      let at: string | undefined;
      if (opts.at !== undefined) at = new Date(parseAt(opts.at)).toISOString();
      const out = ctx.start(opts);
      const r = await ctx.client(opts).restore(tenant, {
        ...(at === undefined ? {} : { at }),
        ...(opts.txid === undefined ? {} : { txid: opts.txid }),
        ...(opts.as === undefined ? {} : { as: opts.as }),
      });
      const target = opts.as === undefined ? `restored ${tenant}` : `restored ${tenant} as ${r.tenant}`;
      const lines = [`${target} to txid ${r.txid} (${r.time})`];
      // In place: txids never reset, so the restored state goes on under a new txid (and a new backup generation).
      if (opts.as === undefined && typeof r.newTxid === 'number') {
        lines.push(`  now at txid ${r.newTxid} (new backup generation)${typeof r.pauseMs === 'number' ? `; requests paused ${r.pauseMs} ms` : ''}`);
      }
      out.done(r, lines);
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

function parseAt(at: string): number {
  const ms = Date.parse(at);
  if (Number.isNaN(ms)) throw new UsageError(`--at ${JSON.stringify(at)} is not a time (expected RFC 3339, e.g. 2025-06-01T12:00:00Z)`);
  return ms;
}

/** `restore TENANT --from BUCKET_URL --out FILE [--at TIME | --txid N]`: no node, no connection. */
async function restoreOffline(ctx: Context, tenant: string, opts: RestoreOptions): Promise<void> {
  if (opts.out === undefined) throw new UsageError('restore --from needs --out FILE (the SQLite file to write)');
  if (opts.as !== undefined) throw new UsageError('--as forks a tenant on a node; an offline restore (--from) writes a file (--out)');
  if (opts.at !== undefined && opts.txid !== undefined) throw new UsageError('restore takes at most one of --at TIME or --txid N');
  const at = opts.at === undefined ? undefined : parseAt(opts.at);
  const out = ctx.start(opts);
  // Loaded here: the replication and S3 code only matters to this form.
  const { offlineRestore } = await import('../offline-restore.ts');
  const r = await offlineRestore(tenant, {
    from: opts.from!, out: opts.out, env: ctx.io.env, cwd: ctx.io.cwd,
    ...(at === undefined ? {} : { at }),
    ...(opts.txid === undefined ? {} : { txid: opts.txid }),
    ...(opts.incarnation === undefined ? {} : { incarnation: opts.incarnation }),
    ...(opts.generation === undefined ? {} : { generation: opts.generation }),
    ...(opts.force === undefined ? {} : { force: opts.force }),
  });
  out.done(r, [`restored ${r.tenant} to txid ${r.txid} (${r.time}) into ${r.out}: ${bytes(r.bytes)}, integrity_check ok`,
    `  incarnation ${r.incarnation}, generation ${r.generation}, epoch ${r.epoch}`]);
}
