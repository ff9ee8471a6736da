import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SCENARIO_FILE, loadScenarioFile, parseScenarioFile, requestStream, tenantIds } from './scenarios.ts';

const text = readFileSync(SCENARIO_FILE, 'utf8');
const edit = (f: (raw: any) => void) => { const raw = JSON.parse(text); f(raw); return JSON.stringify(raw); };

describe('scenario file', () => {
  it('the shipped file is valid and has the three scenarios the issue asks for', () => {
    const file = loadScenarioFile();
    expect(Object.keys(file.scenarios)).toEqual(['writes-across-tenants', 'mixed-80-20', 'hot-tenant']);
    expect(file.scenarios['writes-across-tenants']!.tenants).toBe(1000);
    expect(file.scenarios['hot-tenant']!.tenants).toBe(1);
    expect(Object.isFrozen(file.scenarios['mixed-80-20'])).toBe(true);
  });

  it('names the bad key: a mix that does not sum to 1, a zero duration', () => {
    expect(() => parseScenarioFile(edit((r) => { r.scenarios['mixed-80-20'].mix.read = 0.5; }))).toThrow(/scenarios\.mixed-80-20\.mix/);
    expect(() => parseScenarioFile(edit((r) => { r.scenarios['hot-tenant'].durationSeconds = 0; }))).toThrow(/scenarios\.hot-tenant\.durationSeconds/);
  });

  it('an 80/20 stream sends exactly one write in five, to the given tenants, with the counter bound', () => {
    const file = loadScenarioFile();
    const tenants = tenantIds(file, 3);
    const next = requestStream(file, { write: 0.2, read: 0.8 }, tenants);
    const picks = Array.from({ length: 100 }, next);
    expect(picks.filter((p) => p.kind === 'write')).toHaveLength(20);
    expect(new Set(picks.map((p) => p.tenant))).toEqual(new Set(tenants));
    const w = picks.find((p) => p.kind === 'write')!;
    expect(w.params).toHaveLength((w.op.sql.match(/\?/g) ?? []).length);
    expect(w.params.every((v) => v !== '$seq')).toBe(true);
  });
});
