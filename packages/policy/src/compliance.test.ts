import { describe, expect, it } from 'vitest';
import { regionAllowed, violations } from './compliance.ts';
import { marsPolicy } from './mars-policy.fixture.ts';

describe('regionAllowed', () => {
  const policy = marsPolicy();

  it('is true only for a region of the residency', () => {
    expect(regionAllowed(policy, 'martian', 'mars-south')).toBe(true);
    expect(regionAllowed(policy, 'martian', 'moon-base')).toBe(false);
    expect(regionAllowed(policy, 'anywhere', 'moon-base')).toBe(true);
    expect(regionAllowed(policy, 'venusian', 'moon-base')).toBe(false);
    expect(regionAllowed(policy, 'toString', 'moon-base')).toBe(false);
  });
});

describe('violations', () => {
  const policy = marsPolicy();

  it('lists exactly the tenants the policy leaves out of compliance, with the rule', () => {
    const found = violations(policy, [
      { id: 'fine', residency: 'martian', region: 'mars-north' },
      { id: 'stranded', residency: 'martian', region: 'moon-base' },
      { id: 'olympus', residency: 'martian', region: 'mars-south' },
      { id: 'tranquility', residency: 'anywhere', region: 'moon-base' },
      { id: 'orphan', residency: 'venusian', region: 'mars-north' },
      { id: 'lost', residency: 'anywhere', region: 'phobos' },
    ]);
    expect(found.map((v) => [v.tenant, v.rule])).toEqual([
      ['stranded', 'residency-regions'],
      ['olympus', 'pinned'],
      ['tranquility', 'pin-residency'],
      ['orphan', 'unknown-residency'],
      ['lost', 'unknown-region'],
    ]);
    expect(found[0]).toEqual({
      tenant: 'stranded', region: 'moon-base', residency: 'martian', rule: 'residency-regions',
      reason: 'residency "martian" allows mars-north, mars-south; not moon-base',
    });
  });
});
