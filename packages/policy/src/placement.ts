import { DomicileError } from '@domicile/errors';
import { findPin, findRegion, findResidency, outsideResidency, pinnedElsewhere, pinResidency, unknownRegion, unknownResidency, violationError } from './lookup.ts';
import { isValidTenantId, TENANT_ID_PATTERN } from './names.ts';
import type { Policy } from './types.ts';

/** A request to create a tenant (`POST /v1/tenants`). */
export interface PlacementRequest {
  readonly id: string;
  readonly residency: string;
  /** Explicit region; absent (or null): the pin, else the residency's default. */
  readonly region?: string | null | undefined;
}

/** Where a new tenant goes and why. */
export interface PlacementDecision {
  readonly region: string;
  /** `requested`: the request named it; `pin`: the tenant's pin; `default`: the residency's default. */
  readonly source: 'requested' | 'pin' | 'default';
}

/**
 * Decide the region of a new tenant, or throw POLICY_VIOLATION (422) naming the
 * rule (`details.rule`). Rules in order: pin residency, unknown residency,
 * unknown region, region outside the residency, pinned elsewhere.
 * A malformed id is INVALID_TENANT_ID; non-string fields are BAD_REQUEST.
 */
export function placeTenant(policy: Policy, req: PlacementRequest): PlacementDecision {
  const { id, residency } = req;
  const region = req.region ?? undefined;
  if (!isValidTenantId(id)) throw new DomicileError('INVALID_TENANT_ID', `tenant id must match ${TENANT_ID_PATTERN.source}`);
  if (typeof residency !== 'string') throw new DomicileError('BAD_REQUEST', 'residency must be a string', { field: 'residency' });
  if (region !== undefined && typeof region !== 'string') throw new DomicileError('BAD_REQUEST', 'region must be a string', { field: 'region' });

  const pin = findPin(policy, id);
  if (pin !== undefined && pin.residency !== residency) throw violationError(pinResidency(id, pin.residency, residency));
  const rule = findResidency(policy, residency);
  if (rule === undefined) throw violationError(unknownResidency(policy, residency));
  if (region !== undefined) {
    if (findRegion(policy, region) === undefined) throw violationError(unknownRegion(policy, region));
    if (!rule.regions.includes(region)) throw violationError(outsideResidency(residency, rule, region));
    if (pin?.pin !== undefined && pin.pin !== region) throw violationError(pinnedElsewhere(id, pin.pin, region));
    return { region, source: 'requested' };
  }
  if (pin?.pin !== undefined) return { region: pin.pin, source: 'pin' };
  return { region: rule.default, source: 'default' };
}
