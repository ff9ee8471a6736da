import type { Policy } from './types.ts';

/** A short human summary of a valid policy, one line each, for `domicile policy check` and startup logs. */
export function describePolicy(policy: Policy): string[] {
  const lines = [`${policy.source}: valid (sha256 ${policy.hash})`];
  lines.push(`regions: ${policy.regionOrder.map((r) => `${r} (${policy.regions[r]!.jurisdiction})`).join(', ')}`);
  for (const [name, r] of Object.entries(policy.residencies)) {
    lines.push(`residency ${name}: ${r.regions.join(', ')}; default ${r.default}; transit ${r.transit}; backups ${r.backups}; purgeAfterMove ${r.purgeAfterMove}`);
  }
  for (const [id, t] of Object.entries(policy.tenants)) {
    lines.push(`tenant ${id}: residency ${t.residency}${t.pin === undefined ? '' : `, pinned to ${t.pin}`}`);
  }
  return lines;
}
