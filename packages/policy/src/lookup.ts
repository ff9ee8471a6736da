import { DomicileError } from '@domicile/errors';
import type { Policy, PolicyRule, RegionRule, ResidencyRule, TenantPin } from './types.ts';

/** The residency class of that name, if the policy defines it. */
export function findResidency(policy: Policy, name: string): ResidencyRule | undefined {
  return typeof name === 'string' && Object.hasOwn(policy.residencies, name) ? policy.residencies[name] : undefined;
}

/** The region of that name, if the policy defines it. */
export function findRegion(policy: Policy, name: string): RegionRule | undefined {
  return typeof name === 'string' && Object.hasOwn(policy.regions, name) ? policy.regions[name] : undefined;
}

/** The pin of a tenant, if the policy names it. */
export function findPin(policy: Policy, tenant: string): TenantPin | undefined {
  return typeof tenant === 'string' && Object.hasOwn(policy.tenants, tenant) ? policy.tenants[tenant] : undefined;
}

/** A refusal: why a placement or move breaks the policy, with the rule in `details.rule`. */
export interface Refusal {
  readonly rule: PolicyRule;
  readonly message: string;
  readonly details: Record<string, unknown>;
}

/** The POLICY_VIOLATION (422) error of a refusal. */
export function violationError(r: Refusal): DomicileError {
  return new DomicileError('POLICY_VIOLATION', r.message, { rule: r.rule, ...r.details });
}

/** Refusal: the residency class does not exist. */
export function unknownResidency(policy: Policy, residency: string): Refusal {
  const known = Object.keys(policy.residencies);
  return {
    rule: 'unknown-residency',
    message: `unknown residency ${JSON.stringify(residency)}; the policy defines ${known.map((r) => `"${r}"`).join(', ')}`,
    details: { residency, residencies: known },
  };
}

/** Refusal: the region does not exist. */
export function unknownRegion(policy: Policy, region: string): Refusal {
  return {
    rule: 'unknown-region',
    message: `unknown region ${JSON.stringify(region)}; the policy defines ${policy.regionOrder.join(', ')}`,
    details: { region, regions: policy.regionOrder },
  };
}

/** Refusal: the region exists but the residency class does not allow it. */
export function outsideResidency(residency: string, rule: ResidencyRule, region: string): Refusal {
  return {
    rule: 'residency-regions',
    message: `residency "${residency}" allows ${rule.regions.join(', ')}; not ${region}`,
    details: { residency, region, allowed: rule.regions },
  };
}

/** Refusal: the tenant is pinned to another region. */
export function pinnedElsewhere(tenant: string, pin: string, region: string): Refusal {
  return {
    rule: 'pinned',
    message: `tenant ${tenant} is pinned to region ${pin}; not ${region}`,
    details: { tenant, pin, region },
  };
}

/** Refusal: the tenant is pinned to another residency class. */
export function pinResidency(tenant: string, pinned: string, residency: string): Refusal {
  return {
    rule: 'pin-residency',
    message: `tenant ${tenant} is pinned to residency "${pinned}"; not "${residency}"`,
    details: { tenant, pinnedResidency: pinned, residency },
  };
}
