import type { Command } from 'commander';
import type { DomicileClient, MoveStatus } from '@domicile/client';
import { DomicileError } from '@domicile/errors';
import type { Policy } from '@domicile/policy';
import type { Context } from '../context.ts';
import { bytes, millis } from '../format.ts';
import { withConnectionOptions, type HttpOptions } from '../options.ts';
import type { Output } from '../output.ts';
import { ProgressBar } from '../progress-bar.ts';

interface MoveOptions extends HttpOptions {
  to: string;
  node?: string;
  dryRun?: boolean;
  wait: boolean;
}

/** `domicile move TENANT --to REGION [--node N] [--dry-run] [--no-wait]`. */
export function registerMove(program: Command, ctx: Context): void {
  withConnectionOptions(program.command('move <tenant>').description('move a tenant to another region, with a progress bar; prints the write pause')
    .requiredOption('--to <region>', 'target region')
    .option('--node <node>', 'target node (default: the least-loaded live node of the region)')
    .option('--dry-run', "explain the policy's decision and move nothing; exit 1 when refused")
    .option('--no-wait', 'print the move id and return once the server accepted the move'))
    .action(async (tenant: string, opts: MoveOptions) => {
      const out = ctx.start(opts);
      const client = ctx.client(opts);
      if (opts.dryRun === true) {
        ctx.exitCode = await dryRun(client, out, tenant, opts);
        return;
      }
      const { moveId } = await client.moveTenant(tenant, { to: opts.to, ...(opts.node === undefined ? {} : { node: opts.node }) });
      if (!opts.wait) {
        out.result({ moveId }, [moveId]);
        return;
      }
      out.note(`move ${moveId}: ${tenant} → ${opts.to}`);
      const final = await follow(client, out, moveId);
      out.result(final, [
        `moved ${final.tenant}: ${final.from} → ${final.to} (node ${final.node})`,
        `write pause: ${millis(final.writePauseMs)}`,
        `copied: ${bytes(final.bytesCopied)}`,
      ]);
    });
}

// Progress on stderr: a redrawn bar on a terminal, one line per phase change
// otherwise (CI logs), nothing with --quiet or --json.
async function follow(client: DomicileClient, out: Output, moveId: string): Promise<MoveStatus> {
  const bar = out.interactive ? new ProgressBar(out.progressStream) : undefined;
  let lastPhase = '';
  try {
    return await client.waitForMove(moveId, (s) => {
      if (bar !== undefined) bar.update({ label: s.phase, done: s.bytesCopied, total: s.bytesTotal });
      else if (s.phase !== lastPhase && !out.json) out.note(`${s.phase}${s.bytesTotal > 0 ? ` (${bytes(s.bytesCopied)} / ${bytes(s.bytesTotal)})` : ''}`);
      lastPhase = s.phase;
    });
  } finally {
    bar?.finish();
  }
}

async function dryRun(client: DomicileClient, out: Output, id: string, opts: MoveOptions): Promise<number> {
  const [tenant, served] = await Promise.all([client.getTenant(id), client.policy()]);
  const { explainMove } = await import('@domicile/policy');
  const policy = await policyFromServer(served, `${client.url}/v1/policy`);
  const e = explainMove(policy, { id: tenant.id, residency: tenant.residency, region: tenant.region }, opts.to);
  const hash = typeof served.hash === 'string' ? served.hash : policy.hash;
  out.result({
    allowed: e.allowed, tenant: tenant.id, residency: tenant.residency, from: tenant.region, to: opts.to,
    ...(opts.node === undefined ? {} : { node: opts.node }), reasons: e.reasons, ...(e.rule === undefined ? {} : { rule: e.rule }), policyHash: hash,
  }, [
    `move ${tenant.id} (residency ${tenant.residency}) ${tenant.region} → ${opts.to}${opts.node === undefined ? '' : ` (node ${opts.node})`}: ${e.allowed ? 'allowed' : 'refused'}${e.rule === undefined ? '' : ` by rule ${e.rule}`}`,
    ...e.reasons.map((r) => `  - ${r}`),
    `policy hash ${hash} (from ${client.url})`,
  ]);
  return e.allowed ? 0 : 1;
}

/**
 * The node's policy as a `Policy`: `GET /v1/policy` answers the normalized
 * policy (possibly wrapped as `{policy, hash}`); its rule fields are valid
 * policy-file keys, so re-validating them with the policy package's own parser
 * gives exactly the object `explainMove` expects.
 */
export async function policyFromServer(body: Record<string, unknown>, source: string): Promise<Policy> {
  const raw = (typeof body.policy === 'object' && body.policy !== null ? body.policy : body) as Record<string, unknown>;
  const { parsePolicy } = await import('@domicile/policy');
  const text = JSON.stringify({ version: raw.version ?? 1, regions: raw.regions, residencies: raw.residencies, tenants: raw.tenants ?? {} });
  try {
    return parsePolicy(text, source);
  } catch (cause) {
    throw new DomicileError('INTERNAL', `the policy from ${source} is not readable by this CLI: ${cause instanceof Error ? cause.message : String(cause)}`, { url: source }, { cause });
  }
}
