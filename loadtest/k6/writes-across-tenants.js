// k6: parallel single-row INSERTs spread over many tenants (default 1000).
// Parameters and thresholds: scenario "writes-across-tenants" in loadtest/scenarios.json. Run: see loadtest/README.md.
import { options as makeOptions, setupTenants, iteration } from './lib.js';

const SCENARIO = 'writes-across-tenants';

export const options = makeOptions(SCENARIO);

export function setup() {
  return setupTenants(SCENARIO);
}

export default function (data) {
  iteration(SCENARIO, data);
}
