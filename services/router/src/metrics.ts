import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { threadCpuSeconds, type ShardPool, type ShardRef } from '@domicile/shard';
import type { Replicator, ReplicatorOptions } from './replication/replicator.ts';
import { addPuts, type PutTotals } from './replication/shipper-protocol.ts';

/**
 * Prometheus metrics (DESIGN §11). Labels are route patterns, methods, statuses and regions:
 * never tenant ids (cardinality and privacy).
 */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'domicile_http_requests_total', help: 'HTTP requests by route pattern, method and status.',
    labelNames: ['route', 'method', 'status'] as const, registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'domicile_http_request_duration_seconds', help: 'HTTP request latency by route pattern and method.',
    labelNames: ['route', 'method'] as const, registers: [this.registry],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  readonly tenantOps = new Counter({
    name: 'domicile_tenant_operations_total', help: 'Tenant lifecycle operations by kind and region.',
    labelNames: ['op', 'region'] as const, registers: [this.registry],
  });

  readonly movePause = new Histogram({
    name: 'domicile_move_write_pause_seconds', help: 'Write pause of tenant moves: fence to the first write accepted on the new primary.',
    registers: [this.registry], buckets: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5],
  });
  readonly moves = new Counter({
    name: 'domicile_moves_total', help: 'Tenant moves by outcome (done, aborted).',
    labelNames: ['outcome'] as const, registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'domicile_process_' });
  }

  /** Exposes the pool's counters, read at scrape time. */
  watchPool(pool: ShardPool): void {
    const stats = () => pool.stats();
    new Gauge({ name: 'domicile_open_shards', help: 'Open SQLite handles in this process.', registers: [this.registry], collect() { this.set(stats().openShards); } });
    new Gauge({ name: 'domicile_shard_queue_depth', help: 'Requests waiting for a shard worker.', registers: [this.registry], collect() { this.set(stats().queued); } });
    new Gauge({ name: 'domicile_shard_workers', help: 'SQLite worker threads.', registers: [this.registry], collect() { this.set(stats().workers); } });
    new Gauge({ name: 'domicile_shard_evictions_total', help: 'Handles closed by the LRU cache (counter semantics).', registers: [this.registry], collect() { this.set(stats().evictions); } });
    new Gauge({ name: 'domicile_shard_opens_total', help: 'Shard handles opened (counter semantics).', registers: [this.registry], collect() { this.set(stats().opens); } });
    new Gauge({ name: 'domicile_statement_interrupts_total', help: 'Statements interrupted at the statement timeout (counter semantics).', registers: [this.registry], collect() { this.set(stats().interrupts); } });
  }

  /**
   * CPU seconds per thread (Linux, from /proc; counter semantics): `main` (the
   * event loop: HTTP, auth, scheduling), each SQLite worker (`shard-<i>`), the
   * replication `shipper`, and `other` — the rest of the process: V8's
   * garbage-collection and compiler threads, the libuv pool (fsync,
   * compression, crypto), restore threads. A thread that ended (a restarted
   * worker) moves its time into `other`. `other` is the process total (µs)
   * less the threads (10 ms ticks): it is rounded to ticks and never goes
   * down, so that rate() does not see a reset in the rounding. Nothing is
   * exported without /proc.
   */
  watchThreads(threads: () => Array<{ thread: string; tid: number }>): void {
    if (threadCpuSeconds(process.pid) === undefined) return;
    let other = 0;
    new Gauge({
      name: 'domicile_thread_cpu_seconds_total', help: 'CPU seconds (user + system) per thread: main, shard-<i>, shipper, other (counter semantics).',
      labelNames: ['thread'] as const, registers: [this.registry],
      collect() {
        const usage = process.cpuUsage();
        let known = 0;
        for (const t of [{ thread: 'main', tid: process.pid }, ...threads()]) {
          const s = threadCpuSeconds(t.tid);
          if (s === undefined) continue;
          known += s;
          this.set({ thread: t.thread }, s);
        }
        other = Math.max(other, Math.round(((usage.user + usage.system) / 1e6 - known) * 100) / 100);
        this.set({ thread: 'other' }, other);
      },
    });
  }

  /** Checkpoints of shipped WALs by region and how (`quiet`, `held`, `skipped`), and the write pauses of held ones: the replicator's `onCheckpoint`. */
  watchCheckpoints(regionOf: (ref: ShardRef) => string | undefined): NonNullable<ReplicatorOptions['onCheckpoint']> {
    const count = new Counter({
      name: 'domicile_replication_checkpoints_total',
      help: 'Checkpoints of shipped WALs by region: quiet (no write waited), held (the tenant\'s writes paused), skipped (a write came in; tried again later).',
      labelNames: ['region', 'how'] as const, registers: [this.registry],
    });
    const pause = new Histogram({
      name: 'domicile_replication_checkpoint_pause_seconds', help: 'How long a held checkpoint paused its tenant\'s writes, by region.',
      labelNames: ['region'] as const, registers: [this.registry], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    });
    return (ref, how, seconds) => {
      const region = regionOf(ref) ?? 'unknown';
      count.inc({ region, how });
      if (how === 'held') pause.observe({ region }, seconds);
    };
  }

  /**
   * How segment uploads into S3 buckets were sent, by region (counter semantics): `lean`, one signed
   * request; `sdk`, the AWS SDK's command (after a failed lean attempt, for `leanPut=false`, or once
   * the lean path is off, which `domicile_replication_s3_lean_puts_off` shows).
   * docs/object-store.md, "S3 puts".
   */
  watchS3Puts(totals: () => Map<string, PutTotals>, regionOf: (bucket: string) => string | undefined): void {
    const byRegion = () => {
      const out = new Map<string, PutTotals>();
      for (const [bucket, p] of totals()) {
        const region = regionOf(bucket) ?? 'unknown';
        out.set(region, addPuts(out.get(region), p));
      }
      return out;
    };
    new Gauge({
      name: 'domicile_replication_s3_puts_total', help: 'Segment uploads into S3 buckets by region and how they were sent: lean (one signed request) or sdk (the SDK command) (counter semantics).',
      labelNames: ['region', 'path'] as const, registers: [this.registry],
      collect() {
        this.reset();
        for (const [region, p] of byRegion()) {
          this.set({ region, path: 'lean' }, p.lean);
          this.set({ region, path: 'sdk' }, p.sdk);
        }
      },
    });
    new Gauge({
      name: 'domicile_replication_s3_lean_puts_off', help: '1 when a region\'s S3 bucket sends no lean puts (leanPut=false, or failures turned them off: the DOMICILE_LEAN_PUT_OFF warning); every upload then goes through the SDK command.',
      labelNames: ['region'] as const, registers: [this.registry],
      collect() {
        this.reset();
        for (const [region, p] of byRegion()) this.set({ region }, p.leanOff ? 1 : 0);
      },
    });
  }

  /** Replication metrics by region (never by tenant): uploads, their latency, and the worst lag. */
  watchReplication(replicator: Replicator, regionOf: (ref: ShardRef) => string | undefined): (ref: ShardRef, kind: 'segment' | 'snapshot', bytes: number | undefined, seconds: number) => void {
    const objects = new Counter({ name: 'domicile_replication_uploaded_objects_total', help: 'Objects stored in region buckets, by region and kind.', labelNames: ['region', 'kind'] as const, registers: [this.registry] });
    const bytes = new Counter({ name: 'domicile_replication_uploaded_bytes_total', help: 'Segment bytes stored in region buckets, by region.', labelNames: ['region'] as const, registers: [this.registry] });
    const latency = new Histogram({
      name: 'domicile_replication_upload_duration_seconds', help: 'Upload latency of objects to region buckets, by region and kind.',
      labelNames: ['region', 'kind'] as const, registers: [this.registry], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    });
    new Gauge({
      name: 'domicile_replication_lag_seconds', help: 'Largest replication lag among the tenants of a region (seconds since the oldest unshipped commit).',
      labelNames: ['region'] as const, registers: [this.registry],
      collect() {
        this.reset();
        for (const [region, ms] of replicator.maxLagMsBy(regionOf)) this.set({ region }, ms / 1000);
      },
    });
    return (ref, kind, size, seconds) => {
      const region = regionOf(ref) ?? 'unknown';
      objects.inc({ region, kind });
      if (size !== undefined) bytes.inc({ region }, size);
      latency.observe({ region, kind }, seconds);
    };
  }
}
