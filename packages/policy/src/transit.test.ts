import { describe, expect, it } from 'vitest';
import { transitAllowed } from './transit.ts';
import { marsPolicy } from './mars-policy.fixture.ts';

describe('transitAllowed', () => {
  const policy = marsPolicy();

  it('redirect: only nodes in the residency regions relay', () => {
    expect(transitAllowed(policy, 'martian', 'mars-north')).toBe(true);
    expect(transitAllowed(policy, 'martian', 'mars-south')).toBe(true);
    expect(transitAllowed(policy, 'martian', 'moon-base')).toBe(false);
  });

  it('proxy: nodes in any region relay', () => {
    expect(transitAllowed(policy, 'lunar', 'mars-north')).toBe(true);
    expect(transitAllowed(policy, 'lunar', 'moon-base')).toBe(true);
  });

  it('fails closed for an unknown residency or region', () => {
    expect(transitAllowed(policy, 'venusian', 'mars-north')).toBe(false);
    expect(transitAllowed(policy, 'lunar', 'phobos')).toBe(false);
  });
});
