// k6: 80% reads of a tenant's newest row, 20% INSERTs, many tenants.
// Parameters and thresholds: scenario "mixed-80-20" in loadtest/scenarios.json. Run: see loadtest/README.md.
import { options as makeOptions, setupTenants, iteration } from './lib.js';

const SCENARIO = 'mixed-80-20';

export const options = makeOptions(SCENARIO);

export function setup() {
  return setupTenants(SCENARIO);
}

export default function (data) {
  iteration(SCENARIO, data);
}
