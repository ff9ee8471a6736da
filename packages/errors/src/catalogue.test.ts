import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, ERROR_CODES } from './catalogue.ts';
import { DomicileError, deserializeError, isDomicileError } from './domicile-error.ts';

const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
/** Rows of the table in docs/errors.md: | `CODE` | status | ... */
const documented = new Map([...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]));

describe('error catalogue', () => {
  it('documents every code with its status in docs/errors.md', () => {
    for (const code of ERROR_CODES) {
      expect(documented.get(code), `docs/errors.md lacks ${code}`).toBe(ERROR_CATALOGUE[code].status);
    }
  });

  it('has every documented code in the catalogue', () => {
    for (const code of documented.keys()) expect(ERROR_CODES, `${code} is documented but not in the catalogue`).toContain(code);
  });

  it('gives every 503 a Retry-After and nothing else one', () => {
    for (const code of ERROR_CODES) {
      const e = new DomicileError(code);
      expect(e.retryAfterSeconds !== undefined).toBe(e.statusCode === 503);
    }
  });

  it('survives a trip through postMessage-style serialization with code and details', () => {
    const e = deserializeError(structuredClone(new DomicileError('SQL_ERROR', 'boom', { statementIndex: 2 }).serialize()));
    expect(isDomicileError(e)).toBe(true);
    expect(e.toJSON()).toEqual({ error: { code: 'SQL_ERROR', message: 'boom', statementIndex: 2 } });
    expect(deserializeError({ code: 'NOPE' as never, message: 'x' }).code).toBe('INTERNAL');
  });

  it('keeps the caller frames in the stack', () => {
    function callerFrame(): DomicileError { return new DomicileError('INTERNAL'); }
    expect(callerFrame().stack).toContain('callerFrame');
  });
});
