import { describe, expect, it } from 'vitest';
import { NodeMetrics } from './bench/node-metrics.ts';

const TEXT = `# HELP domicile_replication_uploaded_objects_total Objects uploaded.
# TYPE domicile_replication_uploaded_objects_total counter
domicile_replication_uploaded_objects_total{region="eu-west",kind="segment"} 40
domicile_replication_uploaded_objects_total{region="eu-west",kind="snapshot"} 2
domicile_replication_uploaded_objects_total{region="us-east",kind="segment"} 7
domicile_replication_lag_seconds{region="eu-west"} 0.25
domicile_replication_lag_seconds{region="us-east"} 1.5e-1
domicile_thread_cpu_seconds_total{thread="main"} 12.5
domicile_thread_cpu_seconds_total{thread="shard-0"} 3
domicile_open_shards 2000
domicile_open_shards_peak 2100
`;

describe('NodeMetrics: a node\'s /metrics as the benchmarks read it', () => {
  const m = new NodeMetrics(TEXT);

  it('sums a metric over its samples, or over those matching labels', () => {
    expect(m.sum('domicile_replication_uploaded_objects_total')).toBe(49);
    expect(m.sum('domicile_replication_uploaded_objects_total', { kind: 'segment' })).toBe(47);
    expect(m.sum('domicile_replication_uploaded_objects_total', { kind: 'segment', region: 'us-east' })).toBe(7);
    expect(m.sum('domicile_nothing_total')).toBe(0);
  });

  it('takes maxima, unlabelled values (not a longer name that starts the same) and values by label', () => {
    expect(m.max('domicile_replication_lag_seconds')).toBe(0.25);
    expect(m.value('domicile_open_shards')).toBe(2000);
    expect(m.value('domicile_missing')).toBeNaN();
    expect(m.byLabel('domicile_thread_cpu_seconds_total', 'thread')).toEqual(new Map([['main', 12.5], ['shard-0', 3]]));
  });
});
