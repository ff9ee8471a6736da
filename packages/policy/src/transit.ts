import { findRegion, findResidency } from './lookup.ts';
import type { Policy } from './types.ts';

/**
 * May a node in `viaRegion` relay (proxy) requests of a tenant of this residency?
 * `proxy`: yes; `redirect`: only from the class's own regions, otherwise the
 * node answers 307. Fails closed: an unknown residency or region gives false,
 * so the request is redirected to the owner rather than relayed.
 */
export function transitAllowed(policy: Policy, residency: string, viaRegion: string): boolean {
  const rule = findResidency(policy, residency);
  if (rule === undefined || findRegion(policy, viaRegion) === undefined) return false;
  return rule.transit === 'proxy' || rule.regions.includes(viaRegion);
}
