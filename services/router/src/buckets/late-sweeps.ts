/**
 * The second sweep of an erase (DESIGN §5): a node that still held the
 * tenant's lease when the erase began may upload a segment until its lease
 * runs out, so the tenant's prefix is swept again once `leaseTtlMs` has
 * passed. Timers are unref'd (they never keep the process alive) and
 * cancelled on shutdown; a cancelled sweep is logged so an operator can see it.
 */
import type { Logger } from 'pino';
import type { SweepResult } from './bucket-eraser.ts';

/** Options of {@link LateSweeps}. */
export interface LateSweepsOptions {
  /** How long after the erase the sweep runs (the lease TTL). */
  delayMs: number;
  /** The sweep itself (decides which incarnation, if any, to spare). */
  sweep: (tenant: string) => Promise<SweepResult>;
  log: Logger;
}

/** Pending and running late sweeps of one process. */
export class LateSweeps {
  readonly #opts: LateSweepsOptions;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #running = new Set<Promise<void>>();
  #closed = false;

  constructor(opts: LateSweepsOptions) {
    this.#opts = opts;
  }

  /** Tenants whose late sweep has not run yet. */
  get pending(): string[] {
    return [...this.#timers.keys()];
  }

  /** Sweep `tenant` again after the delay; a second erase of the same id restarts its timer. */
  schedule(tenant: string): void {
    if (this.#closed) return;
    clearTimeout(this.#timers.get(tenant));
    const timer = setTimeout(() => {
      this.#timers.delete(tenant);
      const run = this.#run(tenant).finally(() => this.#running.delete(run));
      this.#running.add(run);
    }, this.#opts.delayMs);
    timer.unref();
    this.#timers.set(tenant, timer);
  }

  async #run(tenant: string): Promise<void> {
    const { log } = this.#opts;
    try {
      const r = await this.#opts.sweep(tenant);
      if (r.deleted > 0) log.warn({ tenant, deleted: r.deleted, byRegion: r.byRegion }, 'late erase sweep deleted objects written after the erase');
      else log.info({ tenant }, 'late erase sweep found nothing');
    } catch (err) {
      log.error({ tenant, err }, 'late erase sweep failed; erase the tenant id again or delete its bucket prefix by hand');
    }
  }

  /** Cancel pending sweeps (logged) and wait for running ones. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timers.size > 0) this.#opts.log.warn({ tenants: this.pending }, 'shutdown cancelled pending late erase sweeps');
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    await Promise.all(this.#running);
  }
}
