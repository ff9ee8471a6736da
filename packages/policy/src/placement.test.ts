import { describe, expect, it } from 'vitest';
import { placeTenant } from './placement.ts';
import { marsPolicy } from './mars-policy.fixture.ts';

function refusal(fn: () => unknown): { code: string; message: string; details: Record<string, unknown> } {
  try {
    fn();
  } catch (err) {
    return err as { code: string; message: string; details: Record<string, unknown> };
  }
  throw new Error('expected a refusal');
}

describe('placeTenant', () => {
  const policy = marsPolicy();

  it('places a tenant without a region in its residency default', () => {
    expect(placeTenant(policy, { id: 'rover', residency: 'martian' })).toEqual({ region: 'mars-south', source: 'default' });
    expect(placeTenant(policy, { id: 'rover', residency: 'anywhere' })).toEqual({ region: 'mars-north', source: 'default' });
    expect(placeTenant(policy, { id: 'rover', residency: 'lunar', region: null })).toEqual({ region: 'moon-base', source: 'default' });
  });

  it('places a tenant in an explicit region its residency allows', () => {
    expect(placeTenant(policy, { id: 'rover', residency: 'martian', region: 'mars-north' })).toEqual({ region: 'mars-north', source: 'requested' });
    expect(placeTenant(policy, { id: 'rover', residency: 'anywhere', region: 'moon-base' })).toEqual({ region: 'moon-base', source: 'requested' });
  });

  it('refuses an unknown residency', () => {
    const e = refusal(() => placeTenant(policy, { id: 'rover', residency: 'venusian' }));
    expect(e.code).toBe('POLICY_VIOLATION');
    expect(e.message).toBe('unknown residency "venusian"; the policy defines "martian", "lunar", "anywhere"');
    expect(e.details).toMatchObject({ rule: 'unknown-residency', residency: 'venusian' });
  });

  it('refuses a residency name that is an Object prototype member', () => {
    expect(refusal(() => placeTenant(policy, { id: 'rover', residency: 'constructor' })).details.rule).toBe('unknown-residency');
  });

  it('refuses a region the policy does not define', () => {
    const e = refusal(() => placeTenant(policy, { id: 'rover', residency: 'anywhere', region: 'phobos' }));
    expect(e.code).toBe('POLICY_VIOLATION');
    expect(e.message).toBe('unknown region "phobos"; the policy defines mars-north, mars-south, moon-base');
    expect(e.details).toMatchObject({ rule: 'unknown-region', region: 'phobos' });
  });

  it('refuses a region outside the residency, naming the allowed regions', () => {
    const e = refusal(() => placeTenant(policy, { id: 'rover', residency: 'martian', region: 'moon-base' }));
    expect(e.code).toBe('POLICY_VIOLATION');
    expect(e.message).toBe('residency "martian" allows mars-north, mars-south; not moon-base');
    expect(e.details).toEqual({ rule: 'residency-regions', residency: 'martian', region: 'moon-base', allowed: ['mars-north', 'mars-south'] });
  });

  it('places a pinned tenant in its pin, not the residency default', () => {
    expect(placeTenant(policy, { id: 'olympus', residency: 'martian' })).toEqual({ region: 'mars-north', source: 'pin' });
    expect(placeTenant(policy, { id: 'olympus', residency: 'martian', region: 'mars-north' })).toEqual({ region: 'mars-north', source: 'requested' });
  });

  it('refuses a pinned tenant an explicit region other than its pin, even one its residency allows', () => {
    const e = refusal(() => placeTenant(policy, { id: 'olympus', residency: 'martian', region: 'mars-south' }));
    expect(e.code).toBe('POLICY_VIOLATION');
    expect(e.message).toBe('tenant olympus is pinned to region mars-north; not mars-south');
    expect(e.details).toMatchObject({ rule: 'pinned', pin: 'mars-north', region: 'mars-south' });
  });

  it('refuses a pinned tenant created with another residency', () => {
    const e = refusal(() => placeTenant(policy, { id: 'olympus', residency: 'anywhere', region: 'mars-north' }));
    expect(e.code).toBe('POLICY_VIOLATION');
    expect(e.message).toBe('tenant olympus is pinned to residency "martian"; not "anywhere"');
    expect(e.details).toMatchObject({ rule: 'pin-residency', pinnedResidency: 'martian', residency: 'anywhere' });
  });

  it('lets a residency-only pin choose any region of that residency', () => {
    expect(placeTenant(policy, { id: 'tranquility', residency: 'lunar' }).region).toBe('moon-base');
    expect(refusal(() => placeTenant(policy, { id: 'tranquility', residency: 'anywhere' })).details.rule).toBe('pin-residency');
  });

  it('refuses a malformed tenant id before any policy rule', () => {
    expect(refusal(() => placeTenant(policy, { id: '../etc', residency: 'martian' })).code).toBe('INVALID_TENANT_ID');
  });
});
