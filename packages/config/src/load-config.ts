import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { DomicileError } from '@domicile/errors';
import { parseConfig, type Config } from './config.ts';

/**
 * Loads the configuration: the file named by `DOMICILE_CONFIG` (YAML or JSON whose keys are the
 * variable names of DESIGN §6a), then the environment on top.
 */
export async function loadConfig(env: Readonly<Record<string, string | undefined>>): Promise<Config> {
  const file = env.DOMICILE_CONFIG;
  if (!file) return parseConfig(env);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new DomicileError('BAD_REQUEST', `DOMICILE_CONFIG: cannot read ${file}: ${(err as Error).message}`, {}, { cause: err });
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new DomicileError('BAD_REQUEST', `${file}: not valid YAML: ${(err as Error).message}`, {}, { cause: err });
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new DomicileError('BAD_REQUEST', `${file}: expected a map of DOMICILE_* keys`);
  }
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    if (v === null || typeof v === 'object') throw new DomicileError('BAD_REQUEST', `${file}: ${k}: expected a scalar value`);
    values[k] = String(v);
  }
  try {
    return parseConfig(env, values);
  } catch (err) {
    const e = err as DomicileError;
    throw new DomicileError('BAD_REQUEST', `${file}: ${e.message}`, e.details, { cause: err });
  }
}
