import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

/**
 * The page's files live in `services/router/static/` as real HTML, JS and CSS (editors, linters
 * and the browser see the same text; nothing is escaped into a template string). They are read
 * once when the routes are registered, so a missing file stops the server at boot.
 */
const STATIC_DIR = new URL('../../static/', import.meta.url);

/**
 * Self only, nothing inline: the script and the stylesheet are separate files from this origin,
 * so an injected `<script>` or `style=`/`on*=` attribute would not run even if escaping failed.
 */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const ASSETS: ReadonlyArray<{ route: string; file: string; type: string }> = [
  { route: '/', file: 'status.html', type: 'text/html; charset=utf-8' },
  { route: '/status.js', file: 'status.js', type: 'text/javascript; charset=utf-8' },
  { route: '/status.css', file: 'status.css', type: 'text/css; charset=utf-8' },
  { route: '/favicon.svg', file: 'favicon.svg', type: 'image/svg+xml' },
];

/** The status page (DESIGN §11): `GET /` and its script, stylesheet and icon; public, reads `GET /v1/status`. */
export function statusPageRoutes(app: FastifyInstance): void {
  for (const { route, file, type } of ASSETS) {
    const body = readFileSync(new URL(file, STATIC_DIR));
    app.get(route, async (_request, reply) => {
      void reply
        .type(type)
        .header('content-security-policy', STATUS_PAGE_CSP)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('cache-control', 'no-cache');
      return body;
    });
  }
}
