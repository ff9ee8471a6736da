/** One region of the policy: a place with nodes and one bucket. */
export interface RegionRule {
  /** Label used in reports and audits (`eu`, `us`, ...); carries no rule by itself. */
  readonly jurisdiction: string;
}

/** How requests for a tenant may travel between nodes. */
export type Transit = 'redirect' | 'proxy';

/** Where a tenant's backups live; `same-region` is the only value today. */
export type Backups = 'same-region';

/** A residency class, normalized: `"*"` expanded, every default filled. */
export interface ResidencyRule {
  /** Regions a tenant's primary (and its bytes) may live in, in the order listed (for `"*"`: definition order). Never empty. */
  readonly regions: readonly string[];
  /** Region of a new tenant that names none; always one of `regions`. */
  readonly default: string;
  /** `proxy`: any node relays; `redirect`: only nodes in `regions` relay, others answer 307. */
  readonly transit: Transit;
  /** Where backups go: the bucket of the tenant's current region. */
  readonly backups: Backups;
  /** After a move, delete the old region's bucket objects at once (true) or let retention age them out (false). */
  readonly purgeAfterMove: boolean;
}

/** A tenant named in the policy's `tenants:` section. */
export interface TenantPin {
  /** The only residency the tenant may be created with. */
  readonly residency: string;
  /** The only region the tenant may live in; absent: any region of `residency`. */
  readonly pin?: string;
}

/** A validated, normalized, deeply frozen placement policy. Maps have no prototype; look names up with the helpers. */
export interface Policy {
  /** File format version; only 1 exists. */
  readonly version: 1;
  /** Regions by name. */
  readonly regions: Readonly<Record<string, RegionRule>>;
  /** Region names in the order the file defines them (object key order cannot be trusted for names such as `"1"`). */
  readonly regionOrder: readonly string[];
  /** Residency classes by name. */
  readonly residencies: Readonly<Record<string, ResidencyRule>>;
  /** Tenant pins by tenant id. */
  readonly tenants: Readonly<Record<string, TenantPin>>;
  /** sha256 hex of the canonical JSON of `version`, `regions`, `residencies`, `tenants`: formatting, comments and key order do not change it. */
  readonly hash: string;
  /** File name the policy was read from, for messages. */
  readonly source: string;
}

/** One problem found in a policy file. `line`/`column` are 1-based; 0 means "the file as a whole". */
export interface PolicyProblem {
  readonly line: number;
  readonly column: number;
  /** Key path such as `residencies.eu.default` or `residencies.eu.regions[1]`; empty for the document itself. */
  readonly path: string;
  readonly message: string;
}

/** The policy rule a refusal names, in `details.rule` of a POLICY_VIOLATION. */
export type PolicyRule = 'residency-regions' | 'unknown-residency' | 'unknown-region' | 'pinned' | 'pin-residency';

/** Where a tenant lives, as the directory records it. */
export interface TenantPlacement {
  readonly id: string;
  readonly residency: string;
  readonly region: string;
}
