import { DomicileError } from '@domicile/errors';
import { findPin, findRegion, findResidency, outsideResidency, pinnedElsewhere, pinResidency, unknownRegion, unknownResidency, violationError, type Refusal } from './lookup.ts';
import type { Policy, PolicyRule, TenantPlacement } from './types.ts';

/** The policy's view of a move, for `move --dry-run`. */
export interface MoveExplanation {
  readonly allowed: boolean;
  /** Human sentences: why it is refused, or what the policy says will happen. */
  readonly reasons: readonly string[];
  /** The rule that refuses it (absent when allowed or when the request itself is malformed). */
  readonly rule?: PolicyRule;
}

/** An allowed move. */
export interface MoveApproval {
  readonly allowed: true;
  /** The reasons joined into one sentence list, for logs and the audit. */
  readonly explanation: string;
  readonly reasons: readonly string[];
}

type Verdict =
  | { kind: 'allowed'; reasons: string[] }
  | { kind: 'refused'; refusal: Refusal }
  | { kind: 'bad-request'; message: string };

// Order matches DESIGN §9 step 1: the target must exist, the tenant's pin and
// residency must allow it. A tenant left out of compliance by a policy change
// may always move into compliance.
function judgeMove(policy: Policy, tenant: TenantPlacement, to: string): Verdict {
  if (typeof to !== 'string' || to === '') return { kind: 'bad-request', message: '"to" must name a region' };
  if (to === tenant.region) return { kind: 'bad-request', message: `tenant ${tenant.id} is already in region ${to}` };
  if (findRegion(policy, to) === undefined) return { kind: 'refused', refusal: unknownRegion(policy, to) };
  const pin = findPin(policy, tenant.id);
  if (pin !== undefined && pin.residency !== tenant.residency) {
    return { kind: 'refused', refusal: pinResidency(tenant.id, pin.residency, tenant.residency) };
  }
  const rule = findResidency(policy, tenant.residency);
  if (rule === undefined) return { kind: 'refused', refusal: unknownResidency(policy, tenant.residency) };
  if (!rule.regions.includes(to)) return { kind: 'refused', refusal: outsideResidency(tenant.residency, rule, to) };
  if (pin?.pin !== undefined && pin.pin !== to) return { kind: 'refused', refusal: pinnedElsewhere(tenant.id, pin.pin, to) };

  const reasons = [`residency "${tenant.residency}" allows ${rule.regions.join(', ')}; ${to} is one of them`];
  if (pin?.pin !== undefined) reasons.push(`tenant ${tenant.id} is pinned to ${pin.pin}`);
  if (!rule.regions.includes(tenant.region)) {
    reasons.push(`the tenant is out of compliance in ${tenant.region}; this move brings it into compliance`);
  }
  reasons.push(`backups move with it: new backups go to the bucket of ${to} (backups: ${rule.backups})`);
  reasons.push(rule.purgeAfterMove
    ? `the tenant's objects in the bucket of ${tenant.region} are deleted once the move is done (purgeAfterMove: true)`
    : `the tenant's objects in the bucket of ${tenant.region} age out with retention (purgeAfterMove: false)`);
  return { kind: 'allowed', reasons };
}

/**
 * Check a move before anything moves: returns the approval, or throws
 * POLICY_VIOLATION (422, `details.rule`) or BAD_REQUEST (`to` is the current region).
 */
export function checkMove(policy: Policy, tenant: TenantPlacement, to: string): MoveApproval {
  const v = judgeMove(policy, tenant, to);
  if (v.kind === 'bad-request') throw new DomicileError('BAD_REQUEST', v.message, { field: 'to' });
  if (v.kind === 'refused') throw violationError(v.refusal);
  return { allowed: true, explanation: v.reasons.join('; '), reasons: v.reasons };
}

/** The same decision as `checkMove`, explained instead of thrown (for `--dry-run`). */
export function explainMove(policy: Policy, tenant: TenantPlacement, to: string): MoveExplanation {
  const v = judgeMove(policy, tenant, to);
  if (v.kind === 'bad-request') return { allowed: false, reasons: [v.message] };
  if (v.kind === 'refused') return { allowed: false, reasons: [v.refusal.message], rule: v.refusal.rule };
  return { allowed: true, reasons: v.reasons };
}
