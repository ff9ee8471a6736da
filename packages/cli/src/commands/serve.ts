import type { Command } from 'commander';
import type { Context } from '../context.ts';

/** The part of `@domicile/router` the CLI uses. */
interface RouterModule {
  /** Runs a node until it has shut down; handles SIGTERM, SIGINT and SIGHUP itself and logs its own errors. */
  serve(opts: { env: NodeJS.ProcessEnv }): Promise<unknown>;
}

// A variable specifier: the router (fastify, SQLite workers) loads only for
// `serve`, so every other command starts fast.
const ROUTER = '@domicile/router';

/** `domicile serve`: run a node configured by the environment (DESIGN §6a). */
export function registerServe(program: Command, ctx: Context): void {
  program.command('serve').description('run a Domicile node configured by DOMICILE_* environment variables')
    .action(async () => {
      ctx.start({});
      const router = (await import(ROUTER)) as RouterModule;
      await router.serve({ env: ctx.io.env as NodeJS.ProcessEnv });
    });
}
