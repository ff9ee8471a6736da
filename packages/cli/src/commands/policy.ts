import type { Command } from 'commander';
import type { Policy, ResidencyRule } from '@domicile/policy';
import type { Context } from '../context.ts';
import { plural } from '../format.ts';
import { withOutputOptions, type HttpOptions } from '../options.ts';

/** `domicile policy check FILE`: validate a policy file locally, no server needed. */
export function registerPolicy(program: Command, ctx: Context): void {
  const policy = program.command('policy').description('work with the placement policy file');

  withOutputOptions(policy.command('check <file>').description('validate a policy file and explain it; each error names its line'))
    .action(async (file: string, opts: HttpOptions) => {
      const out = ctx.start(opts);
      // Loaded here, not at the top: the YAML and schema code only matters to this command.
      const { loadPolicy, formatPolicyErrors } = await import('@domicile/policy');
      let p: Policy;
      try {
        p = await loadPolicy(file);
      } catch (err) {
        const formatted: string | readonly string[] = formatPolicyErrors(err);
        const lines = typeof formatted === 'string' ? formatted.split('\n') : [...formatted];
        const errors = (err as { details?: { errors?: unknown } }).details?.errors;
        if (out.json) out.result({ ok: false, file, errors: Array.isArray(errors) ? errors : lines.map((message) => ({ message })) }, []);
        for (const l of lines) out.problem(l);
        ctx.exitCode = 1;
        return;
      }
      out.result({ ok: true, file, hash: p.hash, regions: p.regions, regionOrder: p.regionOrder, residencies: p.residencies, tenants: p.tenants },
        () => explainPolicy(p));
    });
}

/** `ok: ...` then one line per residency and pin: what the file means in words. */
export function explainPolicy(p: Policy): string[] {
  const residencies = Object.entries(p.residencies);
  const pins = Object.entries(p.tenants);
  const lines = [`ok: ${plural(p.regionOrder.length, 'region')}, ${plural(residencies.length, 'residency', 'residencies')}, ${plural(pins.length, 'pin')}, hash ${p.hash}`];
  lines.push(`regions: ${p.regionOrder.map((r) => `${r} (${p.regions[r]?.jurisdiction ?? '?'})`).join(', ')}`);
  for (const [name, r] of residencies) lines.push(`residency ${name}: ${explainResidency(r)}`);
  for (const [id, t] of pins) {
    lines.push(`pin ${id}: must be created with residency ${t.residency}${t.pin === undefined ? '' : `; lives in ${t.pin} and can move only there`}`);
  }
  return lines;
}

function explainResidency(r: ResidencyRule): string {
  const transit = r.transit === 'redirect'
    ? 'nodes outside these regions answer 307 to the owner instead of relaying'
    : 'any node relays its requests to the owner';
  const purge = r.purgeAfterMove
    ? "after a move the old region's backups are deleted at once"
    : "after a move the old region's backups age out with retention";
  return `lives in ${r.regions.join(', ')} (new tenants: ${r.default}); ${transit}; backups stay in the tenant's current region; ${purge}`;
}
