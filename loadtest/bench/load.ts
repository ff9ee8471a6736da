/**
 * Drives one HTTP target with a scenario's request stream through autocannon
 * (closed loop: each connection sends its next request when the previous
 * answer arrives) and reduces the result to the numbers the report prints.
 */
import autocannon from 'autocannon';
import { requestStream, type ScenarioFile, type Scenario } from './scenarios.ts';

/** What one target did in one scenario. */
export interface TargetResult {
  /** Successful (2xx) operations per second over the measured window. */
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** 2xx answers. */
  readonly ok: number;
  /** Socket errors, timeouts and non-2xx answers. */
  readonly errors: number;
  readonly durationSeconds: number;
  /** CPU of the serving process (every thread, user + system) per 2xx answer, in µs, where the harness measures it. */
  readonly cpuUsPerOp?: number;
}

/** Per-request timeout: a request slower than this counts as an error. */
const REQUEST_TIMEOUT_S = 10;
/** Bound on kept latency samples per run. */
const MAX_SAMPLES = 4_000_000;

/** Runs `scenario` against `baseUrl` for `durationSeconds` with `connections` connections. */
export async function drive(opts: {
  baseUrl: string;
  token: string;
  file: ScenarioFile;
  mix: Scenario['mix'];
  tenants: readonly string[];
  connections: number;
  durationSeconds: number;
  /** Each request's bearer token by its tenant (a tenant token); default `token` for every request. */
  tokenFor?: (tenant: string) => string;
}): Promise<TargetResult> {
  const next = requestStream(opts.file, opts.mix, opts.tenants);
  // autocannon's histogram keeps whole milliseconds; the `response` event carries the exact time, kept here for 2xx answers.
  const lat = new Float64Array(MAX_SAMPLES);
  let n = 0;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      url: opts.baseUrl,
      connections: opts.connections,
      duration: opts.durationSeconds,
      pipelining: 1,
      timeout: REQUEST_TIMEOUT_S,
      // With tokenFor the token goes on each request only: one that missed it would be refused, not pass as admin.
      headers: { 'content-type': 'application/json', ...(opts.tokenFor ? {} : { authorization: `Bearer ${opts.token}` }) },
      requests: [{
        method: 'POST',
        setupRequest: (req) => {
          const p = next();
          const auth = opts.tokenFor ? { headers: { ...req.headers, authorization: `Bearer ${opts.tokenFor(p.tenant)}` } } : {};
          return { ...req, ...auth, path: `/v1/tenants/${p.tenant}/query`, body: JSON.stringify({ sql: p.op.sql, params: p.params }) };
        },
      }],
    }, (err, res) => (err ? reject(err) : resolve(res)));
    instance.on('response', (_client, status, _bytes, ms) => {
      if (status >= 200 && status < 300 && n < MAX_SAMPLES) lat[n++] = ms;
    });
  });
  const sorted = lat.subarray(0, n).sort();
  const pct = (q: number) => sorted[Math.min(n - 1, Math.floor(q * n))] ?? 0;
  const ok = result['2xx'];
  // result.errors already includes timeouts.
  const errors = result.errors + result.non2xx;
  return {
    opsPerSec: ok / result.duration,
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    ok,
    errors,
    durationSeconds: result.duration,
  };
}
