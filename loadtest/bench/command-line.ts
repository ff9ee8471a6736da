/**
 * The benchmarks' command lines: `node:util` parseArgs (strict, no
 * positionals), with a bad one reported in one line and exit code 2 instead
 * of parseArgs' stack trace.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

/** `process.argv` parsed against `options`; exits 2 naming `command` and the problem when it does not fit. */
export function parseCommandLine<O extends Options>(command: string, options: O, argv: string[] = process.argv.slice(2)) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    return usageError(command, (err as Error).message);
  }
}

/** Print `command: message` on stderr and exit 2 (a bad command line). */
export function usageError(command: string, message: string): never {
  console.error(`${command}: ${message}`);
  process.exit(2);
}

/** A whole-number option: `fallback` when absent, else `value` in [min, max]; otherwise a usage error (exit 2). */
export function wholeNumber(command: string, flag: string, value: string | undefined, fallback: number, min: number, max: number): number {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    usageError(command, `--${flag} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}
