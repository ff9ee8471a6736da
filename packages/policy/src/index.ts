/**
 * @domicile/policy — the placement policy (DESIGN §4): parse and validate
 * `config/placement.yaml`, then decide placements, moves and transit.
 * Every decision is a pure function of a frozen `Policy`.
 */
export type { Backups, Policy, PolicyProblem, PolicyRule, RegionRule, ResidencyRule, TenantPin, TenantPlacement, Transit } from './types.ts';
export { NAME_PATTERN, TENANT_ID_PATTERN, isValidName, isValidTenantId } from './names.ts';
export { loadPolicy, parsePolicy } from './parse-policy.ts';
export { PolicyError, formatPolicyErrors, formatProblem, isPolicyError } from './policy-error.ts';
export { findPin, findRegion, findResidency } from './lookup.ts';
export { placeTenant, type PlacementDecision, type PlacementRequest } from './placement.ts';
export { checkMove, explainMove, type MoveApproval, type MoveExplanation } from './move.ts';
export { transitAllowed } from './transit.ts';
export { placementViolation, regionAllowed, violations, type Violation } from './compliance.ts';
export { describePolicy } from './describe.ts';
