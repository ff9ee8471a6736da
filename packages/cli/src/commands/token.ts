import { Option, type Command } from 'commander';
import type { TokenScope } from '@domicile/client';
import type { Context } from '../context.ts';
import { positiveInt, withConnectionOptions, type HttpOptions } from '../options.ts';

/** `domicile token create|revoke`. */
export function registerToken(program: Command, ctx: Context): void {
  const token = program.command('token').description('issue and revoke tenant tokens');

  withConnectionOptions(token.command('create <tenant>').description('issue a tenant token; prints the token alone on stdout, so TOKEN=$(domicile token create ...) works')
    .addOption(new Option('--scope <scope>', 'read: queries only; write: reads and writes').choices(['read', 'write']).makeOptionMandatory())
    .option('--ttl <seconds>', "lifetime in seconds (default: the server's)", positiveInt('--ttl')))
    .action(async (tenant: string, opts: HttpOptions & { scope: TokenScope; ttl?: number }) => {
      const out = ctx.start(opts);
      const r = await ctx.client(opts).createToken(tenant, { scope: opts.scope, ...(opts.ttl === undefined ? {} : { ttlSeconds: opts.ttl }) });
      out.result(r, [r.token]);
      if (!out.json) out.note(`${opts.scope} token for ${tenant}, expires ${r.expiresAt}`);
    });

  withConnectionOptions(token.command('revoke <tenant>').description('revoke every token of a tenant issued until now'))
    .action(async (tenant: string, opts: HttpOptions) => {
      const out = ctx.start(opts);
      const r = await ctx.client(opts).revokeTokens(tenant);
      out.done(r ?? {}, [`revoked every token of ${tenant} issued until now`]);
    });
}
