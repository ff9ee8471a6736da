import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadScenarioFile } from './bench/scenarios.ts';

// k6 cannot be installed here, so its scripts are checked statically: they parse as ES modules,
// import only k6 modules and the shared lib, and name scenarios the shared file defines.
const K6_DIR = fileURLToPath(new URL('./k6/', import.meta.url));
const scripts = readdirSync(K6_DIR).filter((f) => f.endsWith('.js'));
const K6_MODULES = new Set(['k6', 'k6/http', 'k6/execution', './lib.js']);

describe('k6 scripts', () => {
  it('has one script per scenario of loadtest/scenarios.json, each naming an existing scenario', () => {
    const known = Object.keys(loadScenarioFile().scenarios);
    const named = scripts.filter((f) => f !== 'lib.js').map((f) => {
      const m = /const SCENARIO = '([^']+)';/.exec(readFileSync(path.join(K6_DIR, f), 'utf8'));
      expect(m, `${f} declares SCENARIO`).not.toBeNull();
      expect(known, `${f} names a scenario of scenarios.json`).toContain(m![1]);
      return m![1];
    });
    expect(named.sort()).toEqual([...known].sort());
  });

  it.each(scripts)('%s parses as an ES module and imports only k6 modules and ./lib.js', (f) => {
    const file = path.join(K6_DIR, f);
    // loadtest/package.json says "type": "module", so node --check parses the file as ESM.
    const res = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8' });
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    const imports = [...readFileSync(file, 'utf8').matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
    expect(imports.length).toBeGreaterThan(0);
    for (const i of imports) expect(K6_MODULES, `${f} imports ${i}`).toContain(i);
  });

  it('lib.js opens the shared scenario file by a path that exists', () => {
    const m = /open\('([^']+)'\)/.exec(readFileSync(path.join(K6_DIR, 'lib.js'), 'utf8'));
    expect(m?.[1]).toBe('../scenarios.json');
    expect(existsSync(path.join(K6_DIR, m![1]!))).toBe(true);
  });
});
