// Shared part of the k6 scripts: reads loadtest/scenarios.json (the file the
// Node harness `pnpm bench` reads too), builds k6 options with thresholds from
// it, creates the tenants in setup() and sends one request per iteration.
//
// Environment: DOMICILE_URL (default http://127.0.0.1:8080), DOMICILE_ADMIN_TOKEN
// (required), TENANTS / VUS / DURATION (override the scenario), RESIDENCY
// (default: the file's), TENANT_TOKENS=1 (write with per-tenant tokens instead
// of the admin token).
import http from 'k6/http';
import { check, fail } from 'k6';
import exec from 'k6/execution';

// open() runs in the init context; the path is relative to this directory.
const spec = JSON.parse(open('../scenarios.json'));
const BASE = (__ENV.DOMICILE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const ADMIN = __ENV.DOMICILE_ADMIN_TOKEN || '';
const SETUP_BATCH = 50;

/** The named scenario with any environment overrides applied. */
export function scenario(name) {
  const s = spec.scenarios[name];
  if (!s) throw new Error(`unknown scenario ${name} (known: ${Object.keys(spec.scenarios).join(', ')})`);
  return Object.assign({}, s, {
    name,
    tenants: Number(__ENV.TENANTS || s.tenants),
    connections: Number(__ENV.VUS || s.connections),
    durationSeconds: Number(__ENV.DURATION || s.durationSeconds),
  });
}

/** k6 options: one constant-VUs scenario; thresholds on the load requests only (setup is tagged apart). */
export function options(name) {
  const s = scenario(name);
  const scenarios = {};
  scenarios[name] = { executor: 'constant-vus', vus: s.connections, duration: `${s.durationSeconds}s` };
  return {
    scenarios,
    setupTimeout: '10m',
    thresholds: {
      'http_req_failed{phase:load}': [`rate<=${s.thresholds.maxErrorRate}`],
      'http_req_duration{phase:load}': [`p(99)<${s.thresholds.p99Ms}`],
      checks: ['rate==1'],
    },
  };
}

function headers(token) {
  return { 'content-type': 'application/json', authorization: `Bearer ${token}` };
}

/** Tenant ids of a run: the same ids the Node harness uses. */
export function tenantIds(count) {
  const ids = [];
  for (let i = 0; i < count; i++) ids.push(spec.tenantPrefix + String(i).padStart(5, '0'));
  return ids;
}

/** Creates the scenario's tenants (an existing one is reused) and their table; returns what each VU needs. */
export function setupTenants(name) {
  if (!ADMIN) fail('DOMICILE_ADMIN_TOKEN is required (the admin token of the node)');
  const s = scenario(name);
  const ids = tenantIds(s.tenants);
  const params = { headers: headers(ADMIN), tags: { phase: 'setup' }, responseCallback: http.expectedStatuses(200, 201, 409) };
  const residency = __ENV.RESIDENCY || spec.residency;
  for (let i = 0; i < ids.length; i += SETUP_BATCH) {
    const chunk = ids.slice(i, i + SETUP_BATCH);
    const created = http.batch(chunk.map((id) => ['POST', `${BASE}/v1/tenants`, JSON.stringify({ id, residency }), params]));
    created.forEach((r, j) => {
      if (r.status !== 201 && r.status !== 409) fail(`creating tenant ${chunk[j]}: ${r.status} ${r.body}`);
    });
    const schema = JSON.stringify({ statements: spec.schema.map((sql) => ({ sql })) });
    const tables = http.batch(chunk.map((id) => ['POST', `${BASE}/v1/tenants/${id}/batch`, schema, params]));
    tables.forEach((r, j) => {
      if (r.status !== 200) fail(`schema of tenant ${chunk[j]}: ${r.status} ${r.body}`);
    });
  }
  const tokens = {};
  if (__ENV.TENANT_TOKENS === '1') {
    for (const id of ids) {
      const r = http.post(`${BASE}/v1/tenants/${id}/tokens`, JSON.stringify({ scope: 'write', ttlSeconds: 3600 }), params);
      if (r.status !== 201) fail(`token of tenant ${id}: ${r.status} ${r.body}`);
      tokens[id] = r.json('token');
    }
  }
  return { ids, tokens };
}

/** One request of the scenario: writes spread evenly by the iteration counter, the tenant at random. */
export function iteration(name, data) {
  const s = scenario(name);
  const i = exec.scenario.iterationInTest;
  const kind = Math.floor((i + 1) * s.mix.write) > Math.floor(i * s.mix.write) ? 'write' : 'read';
  const op = spec.operations[kind];
  const tenant = data.ids[Math.floor(Math.random() * data.ids.length)];
  const params = op.params.map((p) => (p === '$seq' ? i : p === '$now' ? Date.now() : p));
  const res = http.post(`${BASE}/v1/tenants/${tenant}/query`, JSON.stringify({ sql: op.sql, params }), {
    headers: headers(data.tokens[tenant] || ADMIN),
    tags: { phase: 'load', op: kind },
  });
  check(res, { 'status is 200': (r) => r.status === 200 });
}
