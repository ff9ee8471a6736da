import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isDomicileError } from '@domicile/errors';
import { loadPolicy, parsePolicy } from './parse-policy.ts';
import { formatPolicyErrors, isPolicyError, type PolicyError } from './policy-error.ts';
import type { PolicyProblem } from './types.ts';
import { editLine, MARS_POLICY, marsPolicy } from './mars-policy.fixture.ts';

const SHIPPED = fileURLToPath(new URL('../../../config/placement.yaml', import.meta.url));

/** The PolicyError thrown by parsing `text` (fails the test when it parses). */
function policyError(text: string, file = 'bad.yaml'): PolicyError {
  try {
    parsePolicy(text, file);
  } catch (err) {
    expect(isPolicyError(err)).toBe(true);
    return err as PolicyError;
  }
  throw new Error('expected the policy to be refused');
}

function problemAt(text: string, path: string): PolicyProblem {
  const err = policyError(text);
  const p = err.errors.find((e) => e.path === path);
  expect(p, `no error at ${path}; got:\n${err.message}`).toBeDefined();
  return p!;
}

describe('parsePolicy: the shipped example', () => {
  it('parses config/placement.yaml into the normalized DESIGN §4 policy', async () => {
    const p = await loadPolicy(SHIPPED);
    expect(p.source).toBe(SHIPPED);
    expect(p.regionOrder).toEqual(['eu-west', 'eu-central', 'us-east']);
    expect({ ...p.regions }).toEqual({ 'eu-west': { jurisdiction: 'eu' }, 'eu-central': { jurisdiction: 'eu' }, 'us-east': { jurisdiction: 'us' } });
    expect({ ...p.residencies }).toEqual({
      eu: { regions: ['eu-west', 'eu-central'], default: 'eu-west', transit: 'redirect', backups: 'same-region', purgeAfterMove: true },
      us: { regions: ['us-east'], default: 'us-east', transit: 'proxy', backups: 'same-region', purgeAfterMove: true },
      any: { regions: ['eu-west', 'eu-central', 'us-east'], default: 'eu-west', transit: 'proxy', backups: 'same-region', purgeAfterMove: true },
    });
    expect({ ...p.tenants }).toEqual({ 'acme-gmbh': { residency: 'eu', pin: 'eu-central' } });
    expect(p.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('returns a deeply frozen policy', () => {
    const p = marsPolicy();
    expect(Object.isFrozen(p)).toBe(true);
    expect(Object.isFrozen(p.residencies.martian!.regions)).toBe(true);
    expect(() => { (p.residencies.martian!.regions as string[]).push('moon-base'); }).toThrow(TypeError);
    expect(() => { (p.tenants as Record<string, unknown>)['x'] = {}; }).toThrow(TypeError);
  });

  it('fills defaults: first listed region, transit proxy, backups same-region, purgeAfterMove true', () => {
    const lunar = marsPolicy().residencies.lunar!;
    expect(lunar).toEqual({ regions: ['moon-base'], default: 'moon-base', transit: 'proxy', backups: 'same-region', purgeAfterMove: true });
    expect(marsPolicy().residencies.martian!.purgeAfterMove).toBe(false);
  });

  it('expands "*" to every region in definition order, defaulting to the first defined', () => {
    expect(marsPolicy().residencies.anywhere).toMatchObject({ regions: ['mars-north', 'mars-south', 'moon-base'], default: 'mars-north' });
    // Integer-like names would be reordered by a plain JS object; file order must win.
    const p = parsePolicy('version: 1\nregions:\n  zeta: {jurisdiction: z}\n  10: {jurisdiction: t}\n  2: {jurisdiction: t}\nresidencies:\n  all: {regions: "*"}\n', 'n.yaml');
    expect(p.regionOrder).toEqual(['zeta', '10', '2']);
    expect(p.residencies.all).toMatchObject({ regions: ['zeta', '10', '2'], default: 'zeta' });
  });

  it('keeps plain keys as written (tenant 007 stays "007")', () => {
    const p = parsePolicy(`${MARS_POLICY}  007: { residency: lunar }\n`, 'mars.yaml');
    expect(Object.keys(p.tenants)).toContain('007');
  });

  it('treats names such as "constructor" as plain names, not object prototype members', () => {
    const p = parsePolicy('version: 1\nregions:\n  constructor: {jurisdiction: x}\nresidencies:\n  tostring: {regions: [constructor]}\n', 'p.yaml');
    expect(p.residencies.tostring!.regions).toEqual(['constructor']);
    expect(Object.hasOwn(p.residencies, 'constructor')).toBe(false);
  });

  it('accepts an empty tenants section', () => {
    expect(parsePolicy(editLine(17, '', editLine(18, '')), 'mars.yaml').tenants).toEqual({});
  });
});

describe('parsePolicy: hash', () => {
  const reformatted = [
    '# comments and layout do not matter',
    'tenants:',
    '  tranquility:',
    '    residency: "lunar"',
    '  olympus: {pin: mars-north, residency: martian}',
    'residencies:',
    '  anywhere: { regions: "*" }',
    '  lunar: { regions: [ moon-base ], transit: proxy }   # proxy is the default',
    '  martian:',
    '    purgeAfterMove: false',
    '    transit: redirect',
    '    default: "mars-south"',
    '    regions:',
    '      - mars-north',
    '      - mars-south',
    'regions: { mars-north: {jurisdiction: mars}, mars-south: {jurisdiction: mars}, moon-base: {jurisdiction: moon} }',
    'version: 1',
  ].join('\n');

  it('does not change with formatting, comments, key order or spelled-out defaults', () => {
    expect(parsePolicy(reformatted, 'other.yaml').hash).toBe(marsPolicy().hash);
  });

  it('changes with any semantic change', () => {
    const base = marsPolicy().hash;
    expect(parsePolicy(editLine(10, '    transit: proxy'), 'm.yaml').hash).not.toBe(base);
    expect(parsePolicy(editLine(11, '    purgeAfterMove: true'), 'm.yaml').hash).not.toBe(base);
    expect(parsePolicy(editLine(17, '  olympus: { residency: martian, pin: mars-south }'), 'm.yaml').hash).not.toBe(base);
    expect(parsePolicy(editLine(5, '  moon-base: { jurisdiction: luna }'), 'm.yaml').hash).not.toBe(base);
  });
});

describe('parsePolicy: invalid policies name the file, line, column and key path', () => {
  const table: Array<{ name: string; text: string; line: number; path: string; message: RegExp }> = [
    { name: 'typo in a key', text: editLine(10, '    trasit: redirect'), line: 10, path: 'residencies.martian.trasit', message: /unknown key "trasit"; did you mean "transit"\?/ },
    { name: 'bad transit value', text: editLine(10, '    transit: teleport'), line: 10, path: 'residencies.martian.transit', message: /"teleport" is not one of redirect, proxy/ },
    { name: 'default outside the regions', text: editLine(9, '    default: moon-base'), line: 9, path: 'residencies.martian.default', message: /"moon-base" is not one of the regions of residency "martian" \(mars-north, mars-south\)/ },
    { name: 'residency names an unknown region', text: editLine(13, '    regions: [moon-base, phobos]'), line: 13, path: 'residencies.lunar.regions[1]', message: /unknown region "phobos"/ },
    { name: 'pin outside the residency', text: editLine(17, '  olympus: { residency: martian, pin: moon-base }'), line: 17, path: 'tenants.olympus.pin', message: /"moon-base" is not one of the regions of residency "martian"/ },
    { name: 'pin names an unknown region', text: editLine(17, '  olympus: { residency: martian, pin: phobos }'), line: 17, path: 'tenants.olympus.pin', message: /unknown region "phobos"/ },
    { name: 'pin with an unknown residency', text: editLine(18, '  tranquility: { residency: venusian }'), line: 18, path: 'tenants.tranquility.residency', message: /unknown residency "venusian"; defined residencies: martian, lunar, anywhere/ },
    { name: 'duplicate key', text: editLine(5, '  moon-base: { jurisdiction: moon }\n  mars-north: { jurisdiction: mars }'), line: 6, path: 'regions.mars-north', message: /duplicate key "mars-north" \(first defined on line 3\)/ },
    { name: 'version 2', text: editLine(1, 'version: 2'), line: 1, path: 'version', message: /unsupported version 2; only version 1 exists/ },
    { name: 'version missing', text: editLine(1, '# no version'), line: 2, path: 'version', message: /missing required key "version"/ },
    { name: 'empty regions', text: editLine(2, 'regions: {}', editLine(3, '', editLine(4, '', editLine(5, '')))), line: 2, path: 'regions', message: /at least one region must be defined/ },
    { name: 'empty region list', text: editLine(13, '    regions: []'), line: 13, path: 'residencies.lunar.regions', message: /at least one region/ },
    { name: 'regions neither a list nor "*"', text: editLine(15, '    regions: all'), line: 15, path: 'residencies.anywhere.regions', message: /must be a list of region names or "\*"/ },
    { name: 'region listed twice', text: editLine(8, '    regions: [mars-north, mars-south, mars-north]'), line: 8, path: 'residencies.martian.regions[2]', message: /listed twice/ },
    { name: 'region without jurisdiction', text: editLine(5, '  moon-base: {}'), line: 5, path: 'regions.moon-base.jurisdiction', message: /missing required key "jurisdiction"/ },
    { name: 'bad region name', text: editLine(5, '  Moon_Base: { jurisdiction: moon }'), line: 5, path: 'regions.Moon_Base', message: /region name "Moon_Base" must match/ },
    { name: 'bad residency name', text: editLine(12, '  Lunar:'), line: 12, path: 'residencies.Lunar', message: /residency name "Lunar" must match/ },
    { name: 'bad tenant id in pins', text: editLine(18, '  Tranquility.Base: { residency: lunar }'), line: 18, path: 'tenants["Tranquility.Base"]', message: /tenant id "Tranquility.Base" must match/ },
    { name: 'purgeAfterMove not a boolean', text: editLine(11, '    purgeAfterMove: yes'), line: 11, path: 'residencies.martian.purgeAfterMove', message: /must be true or false, got the string "yes"/ },
    { name: 'backups other than same-region', text: editLine(11, '    backups: elsewhere'), line: 11, path: 'residencies.martian.backups', message: /"elsewhere" is not one of same-region/ },
    { name: 'unknown top-level key', text: `${MARS_POLICY}extra: 1\n`, line: 19, path: 'extra', message: /unknown key "extra"; allowed keys: version, regions, residencies, tenants/ },
    { name: 'not YAML at all', text: 'version: 1\nregions: mars: north\n', line: 2, path: '', message: /not valid YAML/ },
    { name: 'YAML that is a list', text: '- version: 1\n- regions: {}\n', line: 1, path: '', message: /must be a mapping .* got a list/ },
    { name: 'an empty file', text: '# nothing here\n', line: 1, path: '', message: /the policy is empty/ },
    { name: 'several YAML documents', text: `${MARS_POLICY}---\nversion: 1\n`, line: 19, path: '', message: /one YAML document/ },
  ];

  it.each(table)('$name', ({ text, line, path, message }) => {
    const p = problemAt(text, path);
    expect(p.line).toBe(line);
    expect(p.message).toMatch(message);
    expect(p.column).toBeGreaterThan(0);
  });

  it('points at the key of the offending entry, and at the item within a list', () => {
    const text = editLine(13, '    regions: [moon-base, phobos]');
    expect(problemAt(text, 'residencies.lunar.regions[1]').column).toBe('    regions: [moon-base, phobos]'.indexOf('phobos') + 1);
    expect(problemAt(editLine(9, '    default: moon-base'), 'residencies.martian.default').column).toBe(5);
  });

  it('formats each problem as file:line:column: path: message', () => {
    const err = policyError(editLine(9, '    default: moon-base'), 'config/placement.yaml');
    expect(formatPolicyErrors(err)).toBe(
      'config/placement.yaml:9:5: residencies.martian.default: "moon-base" is not one of the regions of residency "martian" (mars-north, mars-south)',
    );
    expect(err.code).toBe('BAD_REQUEST');
    expect(err.statusCode).toBe(400);
    expect(isDomicileError(err)).toBe(true);
    expect(err.details).toMatchObject({ policyFile: 'config/placement.yaml', errors: [{ line: 9, column: 5, path: 'residencies.martian.default' }] });
  });

  it('reports every problem at once, in file order, in the message too', () => {
    let text = editLine(1, 'version: 2');
    text = editLine(9, '    default: moon-base', text);
    text = editLine(10, '    trasit: redirect', text);
    text = editLine(17, '  olympus: { residency: venusian, pin: mars-north }', text);
    const err = policyError(text, 'multi.yaml');
    expect(err.errors.map((e) => [e.line, e.path])).toEqual([
      [1, 'version'],
      [9, 'residencies.martian.default'],
      [10, 'residencies.martian.trasit'],
      [17, 'tenants.olympus.residency'],
    ]);
    expect(err.message.split('\n')).toHaveLength(5);
    expect(err.message).toMatch(/^invalid policy multi\.yaml \(4 errors\):\nmulti\.yaml:1:1: version: /);
    expect(formatPolicyErrors(err).split('\n')).toHaveLength(4);
  });

  it('loadPolicy refuses a missing file with a PolicyError naming it', async () => {
    const err = await loadPolicy('/nonexistent/placement.yaml').catch((e: unknown) => e);
    expect(isPolicyError(err)).toBe(true);
    expect(formatPolicyErrors(err)).toBe('/nonexistent/placement.yaml: cannot read the policy file: no such file');
  });
});
