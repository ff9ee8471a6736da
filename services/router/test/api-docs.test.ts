/**
 * The reference docs against the code: every route the router registers has
 * its heading in docs/http-api.md (and every heading is a registered route,
 * unless marked "not built yet"), every error code of the catalogue is in its
 * table, policy.md names every key of the policy schema, cli.md every command
 * and option of `domicile`, and docs/README.md links every document.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, ERROR_CODES } from '@domicile/errors';
import { POLICY_SCHEMA } from '../../../packages/policy/src/schema.ts';
import { buildProgram } from '../../../packages/cli/src/program.ts';
import { Context } from '../../../packages/cli/src/context.ts';
import { processIo } from '../../../packages/cli/src/io.ts';
import { testApp, type TestApp } from './harness.ts';

const docsDir = new URL('../../../docs/', import.meta.url);
const readDoc = (name: string) => readFileSync(new URL(name, docsDir), 'utf8');

/** `METHOD /path` pairs from fastify's route tree (`printRoutes({ commonPrefix: false })`); HEAD is implied by GET. */
export function routesFromTree(tree: string): string[] {
  const out: string[] = [];
  const stack: { depth: number; path: string }[] = [];
  for (const line of tree.split('\n')) {
    const m = /^([│\s]*)(?:└──|├──) (\S+)(?: \(([A-Z, ]+)\))?/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length;
    while (stack.length > 0 && stack[stack.length - 1]!.depth >= depth) stack.pop();
    const parent = stack[stack.length - 1]?.path ?? '';
    const label = m[2]!;
    const path = parent === '' ? label : parent.endsWith('/') || label.startsWith('/') ? parent + label : `${parent}/${label}`;
    stack.push({ depth, path });
    for (const method of (m[3] ?? '').split(',').map((x) => x.trim()).filter((x) => x && x !== 'HEAD')) out.push(`${method} ${path}`);
  }
  return [...new Set(out)].sort();
}

let t: TestApp;
let registered: string[];

beforeAll(async () => {
  t = await testApp();
  await t.app.ready();
  registered = routesFromTree(t.app.printRoutes({ commonPrefix: false }));
});
afterAll(async () => t.close());

describe('docs/http-api.md', () => {
  const doc = readDoc('http-api.md');
  const headings = [...doc.matchAll(/^### `([A-Z]+) (\/[^`]*)`(.*)$/gm)].map((m) => ({ route: `${m[1]} ${m[2]}`, notBuilt: /not built yet/i.test(m[3]!) }));
  const documented = new Set(headings.filter((h) => !h.notBuilt).map((h) => h.route));

  it('reads the routes of the router (sanity check of the tree parser)', () => {
    expect(registered).toContain('GET /');
    expect(registered).toContain('POST /v1/tenants/:id/query');
    expect(registered).toContain('GET /v1/tenants/:id/v2');
    expect(registered).toContain('POST /v2/pipeline');
    expect(registered.length).toBeGreaterThan(30);
    expect(routesFromTree('└── / (GET, HEAD)\n    ├── v1/a (POST)\n    │   └── /:id (GET, HEAD, DELETE)\n    └── b (GET)')).toEqual(
      ['DELETE /v1/a/:id', 'GET /', 'GET /b', 'GET /v1/a/:id', 'POST /v1/a'],
    );
  });

  it('has a heading for every route the router registers', () => {
    const missing = registered.filter((r) => !documented.has(r));
    expect(missing, `routes without a "### \`METHOD /path\`" heading in docs/http-api.md (a heading marked "not built yet" does not count)`).toEqual([]);
  });

  it('documents no route that does not exist, and marks unbuilt ones truthfully', () => {
    const stale = [...documented].filter((r) => !registered.includes(r));
    expect(stale, 'headings in docs/http-api.md for routes the router does not register').toEqual([]);
    const built = headings.filter((h) => h.notBuilt && registered.includes(h.route)).map((h) => h.route);
    expect(built, 'routes marked "not built yet" in docs/http-api.md that the router registers now').toEqual([]);
  });

  it('lists every error code of the catalogue with its status', () => {
    const rows = new Map([...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]));
    for (const code of ERROR_CODES) expect(rows.get(code), `docs/http-api.md lacks ${code}`).toBe(ERROR_CATALOGUE[code].status);
    for (const code of rows.keys()) expect(ERROR_CODES).toContain(code);
  });
});

describe('docs/policy.md', () => {
  it('names every key of the policy schema', () => {
    const doc = readDoc('policy.md');
    const keys = new Set<string>();
    const walk = (schema: unknown): void => {
      if (!schema || typeof schema !== 'object') return;
      const s = schema as { properties?: Record<string, unknown>; additionalProperties?: unknown; items?: unknown; oneOf?: unknown[]; anyOf?: unknown[] };
      for (const [k, v] of Object.entries(s.properties ?? {})) {
        keys.add(k);
        walk(v);
      }
      walk(s.additionalProperties);
      walk(s.items);
      for (const x of [...(s.oneOf ?? []), ...(s.anyOf ?? [])]) walk(x);
    };
    walk(POLICY_SCHEMA);
    expect(keys.size).toBeGreaterThanOrEqual(10);
    for (const k of keys) expect(doc, `docs/policy.md does not name the key \`${k}\``).toContain(`\`${k}\``);
  });
});

describe('docs/cli.md', () => {
  it('names every command and every option of `domicile`', () => {
    const doc = readDoc('cli.md');
    const program = buildProgram(new Context(processIo()));
    const seen: string[] = [];
    const walk = (cmd: typeof program, prefix: string): void => {
      for (const sub of cmd.commands) {
        if (sub.name() === 'help') continue;
        const name = `${prefix}${sub.name()}`.trim();
        seen.push(name);
        expect(doc, `docs/cli.md has no "### \`${name}" section`).toMatch(new RegExp(`^### \`${name}[ \`]`, 'm'));
        for (const opt of sub.options) {
          if (opt.long === '--help') continue;
          expect(doc, `docs/cli.md does not mention ${opt.long} of ${name}`).toContain(opt.long!);
        }
        if (sub.commands.length > 0) walk(sub, `${name} `);
      }
    };
    walk(program, '');
    expect(seen).toEqual(expect.arrayContaining(['serve', 'tenant create', 'schema apply', 'restore']));
  });
});

describe('docs/README.md', () => {
  it('links every document of docs/, and every link resolves', () => {
    const index = readDoc('README.md');
    const links = [...index.matchAll(/\]\(([^)#]+)(?:#[^)]*)?\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/.test(l));
    const files = readdirSync(docsDir).filter((f) => f.endsWith('.md') && f !== 'README.md');
    for (const f of files) expect(links, `docs/README.md does not link ${f}`).toContain(f);
    for (const l of links) expect(() => readFileSync(new URL(l, docsDir)), `docs/README.md links ${l}, which does not exist`).not.toThrow();
  });
});
