/**
 * The per-tenant gate of the data plane (DESIGN §9 steps 4 and 6). Every
 * data-plane request passes it before it resolves the tenant's shard, and
 * leaves when it has answered. A move closes the gate (new requests wait —
 * they have not resolved the shard yet, so once it opens they read the
 * directory again and run on the new primary: a pause, not an error) and
 * waits for the requests already past it to finish.
 */

interface GateState {
  inFlight: number;
  closed: boolean;
  /** Requests waiting for the gate to open. */
  waiters: Array<() => void>;
  /** The move waiting for `inFlight` to reach 0. */
  drained: Array<() => void>;
}

/** Gates of every tenant of this process. */
export class TenantGate {
  readonly #states = new Map<string, GateState>();

  /** Waits while the tenant is fenced, then counts the request in; call the returned function when it has answered. */
  async enter(tenant: string): Promise<() => void> {
    let st = this.#states.get(tenant);
    while (st?.closed) {
      await new Promise<void>((r) => st!.waiters.push(r));
      st = this.#states.get(tenant);
    }
    return this.enterNow(tenant);
  }

  /** Counts a request in without waiting (an interactive transaction that already holds the tenant). */
  enterNow(tenant: string): () => void {
    const st = this.#state(tenant);
    st.inFlight++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      st.inFlight--;
      if (st.inFlight === 0) {
        for (const d of st.drained.splice(0)) d();
        this.#forget(tenant, st);
      }
    };
  }

  /** True while a move holds the tenant's gate. */
  isClosed(tenant: string): boolean {
    return this.#states.get(tenant)?.closed === true;
  }

  /** Requests of the tenant past the gate and not answered yet. */
  inFlight(tenant: string): number {
    return this.#states.get(tenant)?.inFlight ?? 0;
  }

  /** Closes the gate: later requests wait in {@link enter}. */
  close(tenant: string): void {
    this.#state(tenant).closed = true;
  }

  /** Resolves once no request of the tenant is past the gate. */
  async drained(tenant: string): Promise<void> {
    const st = this.#states.get(tenant);
    if (!st || st.inFlight === 0) return;
    await new Promise<void>((r) => st.drained.push(r));
  }

  /** Opens the gate: waiting requests go on (and read the directory again). */
  open(tenant: string): void {
    const st = this.#states.get(tenant);
    if (!st) return;
    st.closed = false;
    for (const w of st.waiters.splice(0)) w();
    this.#forget(tenant, st);
  }

  /** Tenants whose gate is closed right now (for the status page's count). */
  get closedCount(): number {
    let n = 0;
    for (const st of this.#states.values()) if (st.closed) n++;
    return n;
  }

  #state(tenant: string): GateState {
    let st = this.#states.get(tenant);
    if (!st) {
      st = { inFlight: 0, closed: false, waiters: [], drained: [] };
      this.#states.set(tenant, st);
    }
    return st;
  }

  #forget(tenant: string, st: GateState): void {
    if (!st.closed && st.inFlight === 0 && st.waiters.length === 0 && st.drained.length === 0 && this.#states.get(tenant) === st) {
      this.#states.delete(tenant);
    }
  }
}
