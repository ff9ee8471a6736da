import { isDomicileError } from '@domicile/errors';
import { isUnreachable } from '@domicile/client';
import { Context } from './context.ts';
import { ExitCode, exitCodeOf } from './exit-codes.ts';
import { processIo, type CliIo } from './io.ts';
import { Output } from './output.ts';
import { buildProgram } from './program.ts';

/**
 * Run `domicile` with these arguments (without `node` and the script) and
 * resolve with the exit code. Never exits the process and never prints a
 * stack for an expected error; set DOMICILE_DEBUG=1 to see one for a bug.
 */
export async function run(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const ctx = new Context(io);
  const program = buildProgram(ctx);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    const commanderCode = commanderErrorCode(err);
    if (commanderCode !== undefined) {
      // Commander has printed its message (or the help/version) already.
      return commanderCode === 'commander.helpDisplayed' || commanderCode === 'commander.version' ? ExitCode.OK : ExitCode.USAGE;
    }
    const out = ctx.out ?? new Output(io, {});
    out.error(err);
    const hint = hintFor(err);
    if (hint !== undefined) out.note(hint);
    if (!isDomicileError(err) && io.env.DOMICILE_DEBUG === '1' && err instanceof Error && err.stack !== undefined) out.problem(err.stack);
    return exitCodeOf(err);
  }
}

function commanderErrorCode(err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('commander.') ? code : undefined;
}

function hintFor(err: unknown): string | undefined {
  if (isUnreachable(err)) {
    return 'hint: is a node running there? Start one with `pnpm start`, or point --url / DOMICILE_URL at a running node';
  }
  if (isDomicileError(err) && err.code === 'UNAUTHORIZED') {
    return 'hint: pass --token or set DOMICILE_ADMIN_TOKEN (a node on this machine writes its generated token to <data dir>/admin-token)';
  }
  return undefined;
}
