import { InvalidArgumentError, type Command } from 'commander';
import { DEFAULT_TIMEOUT_SECONDS, DEFAULT_URL, type ConnectionOptions } from './connection.ts';
import type { OutputOptions } from './output.ts';

/** Options of every command that talks to a node. */
export type HttpOptions = ConnectionOptions & OutputOptions;

/** Add `--json` and `--quiet`. */
export function withOutputOptions(cmd: Command): Command {
  return cmd
    .option('--json', 'print exactly one JSON document on stdout (the result, or {"error":{...}})')
    .option('-q, --quiet', 'no notes or progress on stderr and no confirmations; data and errors still print');
}

/** Add `--url`, `--token`, `--timeout`, `--json` and `--quiet`. */
export function withConnectionOptions(cmd: Command): Command {
  return withOutputOptions(cmd
    .option('--url <url>', `node to talk to (default: $DOMICILE_URL, else ${DEFAULT_URL})`)
    .option('--token <token>', 'admin token (default: $DOMICILE_ADMIN_TOKEN, else <$DOMICILE_DATA_DIR or ./data>/admin-token for a node on this machine)')
    .option('--timeout <seconds>', `give up on a request after this many seconds (default: ${DEFAULT_TIMEOUT_SECONDS})`, positiveInt('--timeout')));
}

/** Parser of a positive integer option; a bad value is a usage error (exit 2). */
export function positiveInt(name: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value) || Number(value) <= 0 || !Number.isSafeInteger(Number(value))) {
      throw new InvalidArgumentError(`${name} must be a positive integer, got ${JSON.stringify(value)}`);
    }
    return Number(value);
  };
}

/** Parser of a non-negative integer option (e.g. a txid). */
export function nonNegativeInt(name: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
      throw new InvalidArgumentError(`${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
    }
    return Number(value);
  };
}
