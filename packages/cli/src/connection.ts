import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DomicileClient } from '@domicile/client';
import { UsageError } from './exit-codes.ts';
import type { CliIo } from './io.ts';
import type { Output } from './output.ts';

/** Options of every command that talks to a node. */
export interface ConnectionOptions {
  url?: string;
  token?: string;
  /** Seconds per request. */
  timeout?: number;
}

/** Where `--url` points when neither it nor DOMICILE_URL is set (DESIGN §6a defaults). */
export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** Seconds a request may take before the CLI gives up (restores and erases can be slow). */
export const DEFAULT_TIMEOUT_SECONDS = 120;

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/**
 * The client for a command: `--url` > DOMICILE_URL > the default; `--token` >
 * DOMICILE_ADMIN_TOKEN > the admin token the embedded default generated into
 * its data dir (only for a node on this machine, and the file used is named on stderr).
 */
export function connect(opts: ConnectionOptions, io: CliIo, out: Output): DomicileClient {
  const url = opts.url ?? nonEmpty(io.env.DOMICILE_URL) ?? DEFAULT_URL;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--url ${JSON.stringify(url)} is not a URL (expected e.g. ${DEFAULT_URL})`);
  }
  let token = opts.token ?? nonEmpty(io.env.DOMICILE_ADMIN_TOKEN);
  if (token === undefined && LOOPBACK.has(parsed.hostname)) {
    const file = path.resolve(io.cwd, nonEmpty(io.env.DOMICILE_DATA_DIR) ?? './data', 'admin-token');
    token = readTokenFile(file);
    if (token !== undefined) out.note(`using the admin token in ${file}`);
  }
  return new DomicileClient({
    url,
    ...(token === undefined ? {} : { token }),
    timeoutMs: (opts.timeout ?? DEFAULT_TIMEOUT_SECONDS) * 1000,
  });
}

// The first line that is not blank or a comment: tolerates a trailing newline
// and a header line in the generated file.
function readTokenFile(file: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  return text.split(/\r?\n/).map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#'));
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}
