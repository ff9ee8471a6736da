/** Where a tenant's requests were last sent successfully after a redirect. */
export interface Route {
  /** Base URL of the owner (origin plus any path prefix), without a trailing slash. */
  readonly base: string;
  /** `Domicile-Node` of the redirect, when it named one. */
  readonly node?: string;
  /** `Domicile-Region` of the redirect, when it named one. */
  readonly region?: string;
  /** `Domicile-Epoch` of the redirect; a later redirect with a higher epoch replaces the route. */
  readonly epoch?: number;
}

/**
 * Tenant → owner, learned from 307 redirects so later requests skip the hop.
 * Bounded (oldest entry dropped first) because a long-lived client may talk to
 * many tenants; an entry is dropped on any error answer from that owner.
 */
export class RouteCache {
  readonly #routes = new Map<string, Route>();
  readonly #max: number;

  constructor(max = 10_000) {
    this.#max = max;
  }

  /** The cached route of a tenant. */
  get(tenant: string): Route | undefined {
    return this.#routes.get(tenant);
  }

  /** Remember (or replace) a tenant's route. */
  set(tenant: string, route: Route): void {
    this.#routes.delete(tenant);
    this.#routes.set(tenant, route);
    if (this.#routes.size > this.#max) {
      const oldest = this.#routes.keys().next().value;
      if (oldest !== undefined) this.#routes.delete(oldest);
    }
  }

  /** Forget a tenant's route (after an error or a move). */
  delete(tenant: string): void {
    this.#routes.delete(tenant);
  }

  /** Forget every route. */
  clear(): void {
    this.#routes.clear();
  }
}
