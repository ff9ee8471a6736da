/**
 * `--node-env KEY=VALUE` (repeatable) of `pnpm bench` and `pnpm bench:replication`:
 * extra environment for the Domicile node(s) a benchmark starts, to compare a
 * setting against the defaults (the report names it).
 */

/** The pairs as an environment; throws naming the first value that is not `KEY=VALUE` with a variable-like key (and the option, `flag`). */
export function parseNodeEnv(pairs: readonly string[], flag = '--node-env'): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of pairs) {
    const at = kv.indexOf('=');
    const key = at > 0 ? kv.slice(0, at) : '';
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`${flag} must be KEY=VALUE, got ${JSON.stringify(kv)}`);
    env[key] = kv.slice(at + 1);
  }
  return env;
}

/** How a report names them: `` `K=V`, `K2=V2` ``; empty for none. */
export function describeNodeEnv(env: Readonly<Record<string, string>>): string {
  return Object.entries(env).map(([k, v]) => `\`${k}=${v}\``).join(', ');
}
