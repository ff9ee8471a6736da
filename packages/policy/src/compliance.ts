import { findPin, findRegion, findResidency, outsideResidency, pinnedElsewhere, pinResidency, unknownRegion, unknownResidency, type Refusal } from './lookup.ts';
import type { Policy, PolicyRule, TenantPlacement } from './types.ts';

/** A tenant whose current placement the policy does not allow. */
export interface Violation {
  readonly tenant: string;
  readonly region: string;
  readonly residency: string;
  readonly rule: PolicyRule;
  /** Sentence naming the rule, as in a POLICY_VIOLATION message. */
  readonly reason: string;
}

/** True when the residency class exists and allows the region. */
export function regionAllowed(policy: Policy, residency: string, region: string): boolean {
  return findResidency(policy, residency)?.regions.includes(region) ?? false;
}

/** Why the policy does not allow a tenant where it is, or undefined when it does. */
export function placementViolation(policy: Policy, t: TenantPlacement): Refusal | undefined {
  const pin = findPin(policy, t.id);
  if (pin !== undefined && pin.residency !== t.residency) return pinResidency(t.id, pin.residency, t.residency);
  const rule = findResidency(policy, t.residency);
  if (rule === undefined) return unknownResidency(policy, t.residency);
  if (findRegion(policy, t.region) === undefined) return unknownRegion(policy, t.region);
  if (!rule.regions.includes(t.region)) return outsideResidency(t.residency, rule, t.region);
  if (pin?.pin !== undefined && pin.pin !== t.region) return pinnedElsewhere(t.id, pin.pin, t.region);
  return undefined;
}

/**
 * Tenants the policy leaves out of compliance (one entry each, the first rule
 * broken), e.g. after a reload. They keep running; moving them into
 * compliance is allowed (DESIGN §4).
 */
export function violations(policy: Policy, tenants: Iterable<TenantPlacement>): Violation[] {
  const out: Violation[] = [];
  for (const t of tenants) {
    const r = placementViolation(policy, t);
    if (r !== undefined) out.push({ tenant: t.id, region: t.region, residency: t.residency, rule: r.rule, reason: r.message });
  }
  return out;
}
