import { describe, expect, it } from 'vitest';
import { checkMove, explainMove } from './move.ts';
import { editLine, marsPolicy, MARS_POLICY } from './mars-policy.fixture.ts';
import { parsePolicy } from './parse-policy.ts';

function thrown(fn: () => unknown): { code: string; message: string; details: Record<string, unknown> } {
  try {
    fn();
  } catch (err) {
    return err as { code: string; message: string; details: Record<string, unknown> };
  }
  throw new Error('expected a refusal');
}

describe('checkMove', () => {
  const policy = marsPolicy();
  const rover = { id: 'rover', residency: 'martian', region: 'mars-south' };

  it('allows a move within the residency and explains it', () => {
    const ok = checkMove(policy, rover, 'mars-north');
    expect(ok.allowed).toBe(true);
    expect(ok.explanation).toContain('residency "martian" allows mars-north, mars-south; mars-north is one of them');
    expect(ok.explanation).toContain('age out with retention (purgeAfterMove: false)');
  });

  it('answers BAD_REQUEST when the target is the current region', () => {
    const e = thrown(() => checkMove(policy, rover, 'mars-south'));
    expect(e.code).toBe('BAD_REQUEST');
    expect(e.message).toBe('tenant rover is already in region mars-south');
  });

  it('refuses an unknown target region', () => {
    expect(thrown(() => checkMove(policy, rover, 'phobos')).details).toMatchObject({ rule: 'unknown-region' });
  });

  it('refuses a target outside the residency', () => {
    const e = thrown(() => checkMove(policy, rover, 'moon-base'));
    expect(e.code).toBe('POLICY_VIOLATION');
    expect(e.details).toMatchObject({ rule: 'residency-regions', allowed: ['mars-north', 'mars-south'] });
  });

  it('refuses to move a pinned tenant anywhere but its pin', () => {
    const olympusAway = { id: 'olympus', residency: 'martian', region: 'mars-north' };
    expect(thrown(() => checkMove(policy, olympusAway, 'mars-south')).details).toMatchObject({ rule: 'pinned', pin: 'mars-north' });
  });

  it('allows a tenant a policy change left out of compliance to move back into compliance', () => {
    // olympus was in mars-south, then the policy pinned it to mars-north.
    const olympus = { id: 'olympus', residency: 'martian', region: 'mars-south' };
    const ok = checkMove(policy, olympus, 'mars-north');
    expect(ok.reasons).toContain('tenant olympus is pinned to mars-north');
    const stranded = { id: 'rover', residency: 'martian', region: 'moon-base' };
    expect(checkMove(policy, stranded, 'mars-north').reasons).toContain('the tenant is out of compliance in moon-base; this move brings it into compliance');
  });

  it('refuses a tenant whose residency the policy no longer defines', () => {
    expect(thrown(() => checkMove(policy, { id: 'rover', residency: 'venusian', region: 'mars-south' }, 'mars-north')).details.rule).toBe('unknown-residency');
  });

  it('says the old bucket is purged when purgeAfterMove is true', () => {
    const purging = parsePolicy(editLine(11, '    purgeAfterMove: true', MARS_POLICY), 'm.yaml');
    expect(checkMove(purging, rover, 'mars-north').explanation).toContain('deleted once the move is done (purgeAfterMove: true)');
  });
});

describe('explainMove', () => {
  const policy = marsPolicy();

  it('explains a refusal without throwing, naming the rule', () => {
    expect(explainMove(policy, { id: 'rover', residency: 'lunar', region: 'moon-base' }, 'mars-north')).toEqual({
      allowed: false,
      reasons: ['residency "lunar" allows moon-base; not mars-north'],
      rule: 'residency-regions',
    });
    expect(explainMove(policy, { id: 'rover', residency: 'lunar', region: 'moon-base' }, 'moon-base')).toEqual({
      allowed: false,
      reasons: ['tenant rover is already in region moon-base'],
    });
  });

  it('gives the same verdict as checkMove when allowed', () => {
    const t = { id: 'rover', residency: 'anywhere', region: 'moon-base' };
    const e = explainMove(policy, t, 'mars-south');
    expect(e.allowed).toBe(true);
    expect(e.reasons).toEqual(checkMove(policy, t, 'mars-south').reasons);
  });
});
