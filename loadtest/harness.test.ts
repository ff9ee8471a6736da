import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RESULTS_FILE, TARGETS, formatReport, runBench } from './bench/harness.ts';

// The harness itself on the tiny scenario (the full benchmark is not a test): every target
// measured, Domicile error-free, the Postgres peer really ran, RESULTS.md untouched.
describe('pnpm bench --tiny', () => {
  it('measures every target in every scenario, Domicile with zero errors, against a real Postgres', async () => {
    const before = readFileSync(RESULTS_FILE, 'utf8');
    const report = await runBench({ tiny: true, log: () => {} });
    expect(report.scenarios.map((s) => s.scenario.name)).toEqual(['writes-across-tenants', 'mixed-80-20', 'hot-tenant']);
    for (const s of report.scenarios) {
      for (const t of TARGETS) {
        const r = s.results[t];
        expect(r.opsPerSec, `${s.scenario.name} ${t} ops/s`).toBeGreaterThan(0);
        expect(r.ok, `${s.scenario.name} ${t} ok`).toBeGreaterThan(0);
        expect(r.p99Ms, `${s.scenario.name} ${t} p99`).toBeGreaterThan(0);
      }
      expect(s.results.domicile.errors, `${s.scenario.name} domicile errors`).toBe(0);
      expect(s.results['postgres-peer'].errors, `${s.scenario.name} postgres errors`).toBe(0);
      expect(s.ratios.domicileOverCeiling).toBeGreaterThan(0);
      expect(s.ratios.domicileOverPostgres).toBeGreaterThan(0);
      // The fastify + SQLite bound answered from its own files (it refuses anything but the scenario's statements).
      expect(s.results['fastify-sqlite'].errors, `${s.scenario.name} bound errors`).toBe(0);
      expect(s.ratios.boundOverCeiling).toBeGreaterThan(0);
      expect(s.ratios.domicileOverBound).toBeGreaterThan(0);
      expect(s.results['fastify-sqlite'].cpuUsPerOp, `${s.scenario.name} bound CPU`).toBeGreaterThan(0);
      // CPU per answer of the serving processes (read from /proc around the window).
      expect(s.results.domicile.cpuUsPerOp, `${s.scenario.name} domicile CPU`).toBeGreaterThan(0);
      expect(s.results['fastify-ceiling'].cpuUsPerOp, `${s.scenario.name} ceiling CPU`).toBeGreaterThan(0);
      expect(s.results['postgres-peer'].cpuUsPerOp).toBeUndefined();
      // The same CPU by thread from the node's /metrics: the event loop and the SQLite workers worked, and the groups add up to the whole.
      const th = s.domicileThreads!;
      expect(th, `${s.scenario.name} threads`).toBeDefined();
      expect(th.main).toBeGreaterThan(0);
      expect(th.workers).toBeGreaterThan(0);
      const sum = th.main + th.workers + th.shipper + th.other;
      expect(sum / s.results.domicile.cpuUsPerOp!, `${s.scenario.name} threads add up`).toBeGreaterThan(0.7);
      expect(sum / s.results.domicile.cpuUsPerOp!, `${s.scenario.name} threads add up`).toBeLessThan(1.4);
      // Replication is on (async, the default): the writes of the window were shipped as segments.
      expect(s.replication, `${s.scenario.name} replication`).toBeDefined();
      expect(s.replication!.segmentsPerSec, `${s.scenario.name} segments/s`).toBeGreaterThan(0);
      expect(s.replication!.writesPerSegment).toBeGreaterThan(0);
      // The shard handles of Domicile's window, from /metrics: every tenant of the scenario has one open.
      expect(s.domicileHandles, `${s.scenario.name} handles`).toBeDefined();
      expect(s.domicileHandles!.open).toBeGreaterThanOrEqual(s.tenants);
      expect(s.domicileHandles!.evictionsPerSec).toBe(0);
      expect(Number.isFinite(s.replication!.maxLagSecondsAtEnd)).toBe(true);
    }
    expect(report.method.join('\n')).toMatch(/Postgres \d+ started by the harness \(synchronous_commit=off/);
    expect(report.machine.cores).toBeGreaterThan(0);
    const md = formatReport(report, 'pnpm bench --tiny');
    expect(md).toContain('Domicile / Postgres peer');
    expect(md).toMatch(/The bound \(fastify \+ SQLite on the event loop\): [\d.]+× the ceiling, [\d.]+× the Postgres peer; Domicile [\d.]+× the bound\./);
    expect(md).toMatch(/segments uploaded\/s, [\d.]+ writes per segment/);
    expect(md).toMatch(/shard handles in its window: [\d,]+ opened\/s, [\d,]+ evicted\/s by the LRU cache, [\d,]+ open at the end\./);
    expect(md).toMatch(/Server CPU per answer .*: Domicile [\d,]+ µs · fastify ceiling [\d,]+ µs \(Domicile [\d.]+× the ceiling's\)/);
    expect(md).toMatch(/Domicile by thread .*: event loop [\d,]+ µs · SQLite workers [\d,]+ µs · replication shipper [\d,]+ µs · other .* [\d,]+ µs\./);
    expect(readFileSync(RESULTS_FILE, 'utf8')).toBe(before);
  }, 90_000);

  it('--tenant-tokens: Domicile answers requests that carry each tenant\'s own token, with zero errors', async () => {
    const report = await runBench({ tiny: true, scenarios: ['writes-across-tenants'], tenantTokens: true, log: () => {} });
    const d = report.scenarios[0]!.results.domicile;
    expect(d.ok).toBeGreaterThan(0);
    expect(d.errors).toBe(0);
    expect(report.method.join('\n')).toContain('its tenant\'s own tenant token (--tenant-tokens)');
  }, 90_000);
});
