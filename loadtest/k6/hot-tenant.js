// k6: every VU INSERTs into one tenant.
// Parameters and thresholds: scenario "hot-tenant" in loadtest/scenarios.json. Run: see loadtest/README.md.
import { options as makeOptions, setupTenants, iteration } from './lib.js';

const SCENARIO = 'hot-tenant';

export const options = makeOptions(SCENARIO);

export function setup() {
  return setupTenants(SCENARIO);
}

export default function (data) {
  iteration(SCENARIO, data);
}
