/** Region and residency names: safe in paths, bucket keys and `DOMICILE_BUCKETS` (`region=url,...`). */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** Tenant ids (DESIGN §1): anything else is rejected before it can touch a path. */
export const TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** True for a valid region or residency name. */
export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME_PATTERN.test(name);
}

/** True for a valid tenant id. */
export function isValidTenantId(id: unknown): id is string {
  return typeof id === 'string' && TENANT_ID_PATTERN.test(id);
}
