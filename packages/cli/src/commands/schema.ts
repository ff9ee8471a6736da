import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { Migration, SchemaJob } from '@domicile/client';
import type { Context } from '../context.ts';
import { UsageError } from '../exit-codes.ts';
import { plural, table } from '../format.ts';
import { positiveInt, withConnectionOptions, type HttpOptions } from '../options.ts';
import type { Output } from '../output.ts';
import { ProgressBar } from '../progress-bar.ts';

interface ApplyOptions extends HttpOptions {
  all?: boolean;
  tenant?: string[];
  concurrency?: number;
}

/** A migration file name: a number first; the migration's name is the file name without `.sql`. */
const NUMBERED = /^([0-9]+)/;

/** `domicile schema apply DIR (--all | --tenant T ...) [--concurrency N]` (DESIGN §6). */
export function registerSchema(program: Command, ctx: Context): void {
  const schema = program.command('schema').description('schema fan-out: one migration list applied to every tenant');

  withConnectionOptions(schema.command('apply <dir>')
    .description('store the numbered .sql files of DIR as the migration list and apply what each tenant misses; exit 1 when any tenant failed')
    .option('--all', 'apply to every tenant')
    .option('--tenant <id>', 'apply to this tenant (repeat for several)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--concurrency <n>', 'tenants migrated at once, 1..64 (default: the server\'s, 4)', positiveInt('--concurrency')))
    .action(async (dir: string, opts: ApplyOptions) => {
      const out = ctx.start(opts);
      const named = opts.tenant ?? [];
      if ((opts.all === true) === (named.length > 0)) throw new UsageError('schema apply needs exactly one of --all or --tenant T (repeatable)');
      if (opts.concurrency !== undefined && opts.concurrency > 64) throw new UsageError(`--concurrency must be from 1 to 64, got ${opts.concurrency}`);
      const migrations = await readMigrations(dir);
      const client = ctx.client(opts);
      const put = await client.putSchema(migrations);
      out.note(put.added.length > 0
        ? `stored ${plural(put.added.length, 'new migration')}: ${put.added.join(', ')} (${put.migrations.length} in all)`
        : `the ${plural(put.migrations.length, 'migration')} of ${dir} are stored already`);
      const { jobId } = await client.applySchema({
        ...(opts.all === true ? {} : { tenants: named }),
        ...(opts.concurrency === undefined ? {} : { concurrency: opts.concurrency }),
      });
      out.note(`job ${jobId}: applying to ${opts.all === true ? 'every tenant' : plural(named.length, 'tenant')}`);
      const job = await follow(out, (onProgress) => client.waitForSchemaJob(jobId, onProgress));
      out.result({ added: put.added, job }, () => report(job));
      if (job.failed > 0) {
        out.problem(`${plural(job.failed, 'tenant')} failed; fix them and run the same command again (it applies only what is missing)`);
        ctx.exitCode = 1;
      } else if (job.stopped === true) {
        out.problem(`the job stopped after ${job.done} of ${job.total} tenants (the node shut down); run the same command again`);
        ctx.exitCode = 1;
      }
    });
}

/**
 * The numbered `.sql` files of `dir` in numeric order. Every `.sql` file must
 * start with a number, and no two with the same one: a misnamed file must not
 * be skipped silently. Files are read as UTF-8 and sent byte for byte.
 */
export async function readMigrations(dir: string): Promise<Migration[]> {
  let names: string[];
  try {
    if (!(await stat(dir)).isDirectory()) throw new UsageError(`${dir} is not a directory`);
    names = await readdir(dir);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read the directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const files = names.filter((n) => n.endsWith('.sql')).map((file) => {
    const m = NUMBERED.exec(file);
    if (!m) throw new UsageError(`${path.join(dir, file)}: migration files must start with a number (e.g. 0001_init.sql)`);
    return { file, n: BigInt(m[1]!), name: file.slice(0, -'.sql'.length) };
  });
  if (files.length === 0) throw new UsageError(`no numbered .sql files in ${dir}`);
  files.sort((a, b) => (a.n < b.n ? -1 : a.n > b.n ? 1 : 0));
  for (let i = 1; i < files.length; i++) {
    if (files[i]!.n === files[i - 1]!.n) throw new UsageError(`${files[i - 1]!.file} and ${files[i]!.file} have the same number`);
  }
  return Promise.all(files.map(async (f) => ({ name: f.name, sql: await readFile(path.join(dir, f.file), 'utf8') })));
}

// Progress on stderr: a redrawn bar of tenants on a terminal; nothing otherwise (the summary follows).
async function follow(out: Output, wait: (onProgress: (job: SchemaJob) => void) => Promise<SchemaJob>): Promise<SchemaJob> {
  const bar = out.interactive ? new ProgressBar(out.progressStream) : undefined;
  try {
    return await wait((job) => bar?.update({ label: 'tenants', done: job.done, total: job.total, format: String }));
  } finally {
    bar?.finish();
  }
}

function report(job: SchemaJob): string[] {
  const lines: string[] = [];
  if (job.total === 0) lines.push('no tenants to migrate');
  else if (job.migrationsApplied === 0 && job.failed === 0) lines.push(`nothing to apply: ${plural(job.upToDate, 'tenant')} up to date with ${plural(job.migrations, 'migration')}`);
  else {
    lines.push(`applied ${plural(job.migrationsApplied, 'migration')} to ${plural(job.applied + job.failed, 'tenant')}: ${job.applied} migrated, ${job.upToDate} up to date, ${job.failed} failed${job.skipped > 0 ? `, ${job.skipped} skipped (erased meanwhile)` : ''}`);
  }
  if (job.failures.length > 0) {
    lines.push('', ...table(['tenant', 'migration', 'code', 'message'], job.failures.map((f) => [f.tenant, f.migration ?? '-', f.code, f.message])));
    if (job.failuresTruncated) lines.push(`(the first ${job.failures.length} of ${job.failed} failures)`);
  }
  return lines;
}
