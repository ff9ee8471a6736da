import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerAudit } from './commands/audit.ts';
import { registerMove } from './commands/move.ts';
import { registerPolicy } from './commands/policy.ts';
import { registerRestore } from './commands/restore.ts';
import { registerSchema } from './commands/schema.ts';
import { registerServe } from './commands/serve.ts';
import { registerTenant } from './commands/tenant.ts';
import { registerToken } from './commands/token.ts';
import type { Context } from './context.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * The `domicile` command tree (DESIGN §6). Commander never exits the process
 * itself (exitOverride) and writes through the run's io, so `run()` decides
 * every exit code. A later command (`schema apply`) is one more register call.
 */
export function buildProgram(ctx: Context): Command {
  const program = new Command('domicile')
    .description('Domicile: per-tenant SQLite with data-locality controls')
    .version(VERSION, '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void ctx.io.stdout.write(s),
      writeErr: (s) => void ctx.io.stderr.write(s),
    })
    .showHelpAfterError('(add --help for usage)')
    .allowExcessArguments(false);

  registerServe(program, ctx);
  registerTenant(program, ctx);
  registerToken(program, ctx);
  registerPolicy(program, ctx);
  registerMove(program, ctx);
  registerRestore(program, ctx);
  registerAudit(program, ctx);
  registerSchema(program, ctx);
  return program;
}
