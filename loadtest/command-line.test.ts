import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseCommandLine, wholeNumber } from './bench/command-line.ts';

afterEach(() => vi.restoreAllMocks());

describe('benchmark command lines', () => {
  const options = { rounds: { type: 'string' }, quick: { type: 'boolean', default: false }, 'node-env': { type: 'string', multiple: true } } as const;

  it('returns the values of a good command line', () => {
    expect(parseCommandLine('pnpm bench:x', options, ['--rounds', '3', '--node-env', 'A=1', '--node-env', 'B=2']))
      .toEqual({ rounds: '3', quick: false, 'node-env': ['A=1', 'B=2'] });
  });

  it('exits 2 with one line naming the command and the problem, no stack trace', () => {
    const exit = vi.spyOn(process, 'exit').mockImplementation(((code: number) => { throw new Error(`exit ${code}`); }) as never);
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    for (const argv of [['--rounds'], ['--bogus'], ['stray']]) {
      expect(() => parseCommandLine('pnpm bench:x', options, argv)).toThrow('exit 2');
    }
    expect(exit).toHaveBeenCalledTimes(3);
    expect(err.mock.calls.map((c) => String(c[0]))).toEqual([
      expect.stringMatching(/^pnpm bench:x: .*--rounds.*missing/),
      expect.stringMatching(/^pnpm bench:x: .*'--bogus'/),
      expect.stringMatching(/^pnpm bench:x: .*stray/),
    ]);
  });

  it('reads a whole-number option with its default and range; anything else exits 2 naming the flag', () => {
    expect(wholeNumber('pnpm bench:x', 'rounds', undefined, 3, 1, 20)).toBe(3);
    expect(wholeNumber('pnpm bench:x', 'rounds', '20', 3, 1, 20)).toBe(20);
    const exit = vi.spyOn(process, 'exit').mockImplementation(((code: number) => { throw new Error(`exit ${code}`); }) as never);
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    for (const v of ['0', '21', '2.5', 'many', '']) expect(() => wholeNumber('pnpm bench:x', 'rounds', v, 3, 1, 20)).toThrow('exit 2');
    expect(exit).toHaveBeenCalledTimes(5);
    expect(String(err.mock.calls[3]![0])).toBe('pnpm bench:x: --rounds must be a whole number from 1 to 20, got "many"');
  });
});
