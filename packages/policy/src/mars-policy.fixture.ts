import { parsePolicy } from './parse-policy.ts';
import type { Policy } from './types.ts';

/**
 * A policy with made-up names, so tests prove nothing assumes the shipped
 * example. Line numbers matter: the invalid-policy table edits single lines.
 */
export const MARS_POLICY = [
  'version: 1', //                                        1
  'regions:', //                                          2
  '  mars-north: { jurisdiction: mars }', //              3
  '  mars-south: { jurisdiction: mars }', //              4
  '  moon-base: { jurisdiction: moon }', //               5
  'residencies:', //                                      6
  '  martian:', //                                        7
  '    regions: [mars-north, mars-south]', //             8
  '    default: mars-south', //                           9
  '    transit: redirect', //                             10
  '    purgeAfterMove: false', //                         11
  '  lunar:', //                                          12
  '    regions: [moon-base]', //                          13
  '  anywhere:', //                                       14
  '    regions: "*"', //                                  15
  'tenants:', //                                          16
  '  olympus: { residency: martian, pin: mars-north }', // 17
  '  tranquility: { residency: lunar }', //               18
  '',
].join('\n');

/** MARS_POLICY with line `n` (1-based) replaced by `text` (several lines allowed, or '' to drop it). */
export function editLine(n: number, text: string, base = MARS_POLICY): string {
  const lines = base.split('\n');
  lines.splice(n - 1, 1, ...(text === '' ? [] : [text]));
  return lines.join('\n');
}

/** The parsed MARS_POLICY. */
export function marsPolicy(): Policy {
  return parsePolicy(MARS_POLICY, 'mars.yaml');
}
