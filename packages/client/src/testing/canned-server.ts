import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request as the canned server saw it. */
export interface RecordedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: string;
  /** The body parsed as JSON, when it is JSON. */
  json: unknown;
}

/** What a canned route answers. */
export interface CannedAnswer {
  status?: number;
  headers?: Record<string, string>;
  /** Serialized with content-type application/json. */
  json?: unknown;
  /** Sent as it is when `json` is absent. */
  body?: string;
}

/** A route: a fixed answer, or a function of the request. */
export type CannedRoute = CannedAnswer | ((req: RecordedRequest) => CannedAnswer | Promise<CannedAnswer>);

/** A running canned server. */
export interface CannedServer {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  /** Add or replace a route, keyed `"METHOD /path"` (no query string). */
  route(key: string, answer: CannedRoute): void;
  close(): Promise<void>;
}

/**
 * A real HTTP server on a free port that answers contract-shaped canned
 * responses (DESIGN §5), for client and CLI tests. Unknown routes answer 404
 * NOT_FOUND the way Domicile does.
 */
export async function startCannedServer(routes: Record<string, CannedRoute> = {}): Promise<CannedServer> {
  const table = new Map(Object.entries(routes));
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const u = new URL(req.url ?? '/', 'http://x');
        const body = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = body === '' ? undefined : JSON.parse(body);
        } catch {
          json = undefined;
        }
        const rec: RecordedRequest = { method: req.method ?? 'GET', path: u.pathname, query: u.searchParams, headers: req.headers, body, json };
        requests.push(rec);
        const route = table.get(`${rec.method} ${rec.path}`);
        let answer: CannedAnswer;
        try {
          answer = route === undefined
            ? { status: 404, json: { error: { code: 'NOT_FOUND', message: `no route ${rec.method} ${rec.path}` } } }
            : typeof route === 'function' ? await route(rec) : route;
        } catch (err) {
          answer = { status: 500, json: { error: { code: 'INTERNAL', message: String(err) } } };
        }
        const headers: Record<string, string> = { ...answer.headers };
        let out = answer.body ?? '';
        if (answer.json !== undefined) {
          out = JSON.stringify(answer.json);
          headers['content-type'] ??= 'application/json';
        }
        res.writeHead(answer.status ?? 200, headers);
        res.end(out);
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    route: (key, answer) => void table.set(key, answer),
    close: () => new Promise<void>((resolve, reject) => {
      server.closeAllConnections();
      server.close((err) => (err ? reject(err) : resolve()));
    }),
  };
}
