import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { DomicileError } from '@domicile/errors';
import { reroutingErrorHandler, routeToOwner } from './cluster/owner-routing.ts';
import { sendError } from './http-errors.ts';
import { lazyChildLoggerFactory } from './lazy-logger.ts';
import { backupRoutes } from './routes/backup-routes.ts';
import { dataRoutes } from './routes/data-routes.ts';
import { hranaRoutes } from './hrana/hrana-routes.ts';
import { internalMoveRoutes } from './moves/internal-routes.ts';
import { moveRoutes } from './routes/move-routes.ts';
import { opsRoutes } from './routes/ops-routes.ts';
import { schemaRoutes } from './routes/schema-routes.ts';
import { tenantRoutes } from './routes/tenant-routes.ts';
import type { Runtime } from './runtime.ts';

/** Builds the fastify app over a runtime, without listening (tests use `inject()`). */
export async function buildApp(rt: Runtime, opts: { logger?: Logger; https?: { cert: Buffer; key: Buffer } } = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger ?? rt.log,
    bodyLimit: rt.config.maxBodyBytes,
    // Per-request access logs are off: metrics count requests; refusals and errors are logged.
    logController: new LogController({ disableRequestLogging: true }),
    // Request loggers are made when a line is written (lazy-logger.ts), not for every request.
    childLoggerFactory: lazyChildLoggerFactory,
    return503OnClosing: true,
    // Bodies are validated strictly: no silent coercion, no silently dropped fields.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false, allowUnionTypes: true } },
    ...(opts.https ? { https: opts.https } : {}),
  }) as unknown as FastifyInstance;

  // JSON only: fastify would otherwise hand a text/plain body to the routes as a string.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(reroutingErrorHandler(rt, sendError));
  // Patterns of registered routes, so an unknown method on a known path is METHOD_NOT_ALLOWED.
  const patterns: RegExp[] = [];
  app.addHook('onRoute', (route) => {
    const src = route.url.split('/').map((seg) => (seg.startsWith(':') ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/');
    patterns.push(new RegExp(`^${src}$`));
  });
  app.setNotFoundHandler((request, reply) => {
    const pathOnly = request.url.split('?')[0] ?? '';
    const err = patterns.some((re) => re.test(pathOnly))
      ? new DomicileError('METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${pathOnly}`)
      : new DomicileError('NOT_FOUND', `no route ${request.method} ${pathOnly}`);
    return sendError(request, reply, err);
  });

  app.addHook('onRequest', async (request) => {
    request.startTime = process.hrtime.bigint();
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    rt.metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    const started = request.startTime;
    if (started !== undefined) {
      rt.metrics.duration.observe({ route, method: request.method }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  });

  if (rt.cluster) {
    // Tenant-scoped routes are served by the tenant's owner: relayed or redirected (cluster/owner-routing.ts).
    const cluster = rt.cluster;
    app.addHook('preHandler', async (request, reply) => {
      const url = request.routeOptions.url ?? '';
      if ((url.startsWith('/v1/tenants/:id') || url === '/v2/pipeline') && (await routeToOwner(rt, cluster, request, reply))) return reply;
    });
  }

  opsRoutes(app, rt);
  tenantRoutes(app, rt);
  backupRoutes(app, rt);
  schemaRoutes(app, rt);
  dataRoutes(app, rt);
  hranaRoutes(app, rt);
  moveRoutes(app, rt);
  internalMoveRoutes(app, rt);
  return app;
}

declare module 'fastify' {
  interface FastifyRequest {
    startTime?: bigint;
  }
}
