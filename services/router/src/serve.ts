import { readFileSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import { loadConfig, type Config } from '@domicile/config';
import { loadPolicy, formatPolicyErrors, isPolicyError } from '@domicile/policy';
import { buildApp } from './app.ts';
import { Runtime } from './runtime.ts';

/** A started server: where it listens and how to stop it. */
export interface RunningServer {
  url: string;
  runtime: Runtime;
  /** Graceful stop: stop accepting, finish in-flight requests, checkpoint and close every shard. */
  close(): Promise<void>;
}

/** Starts a node from a configuration: runtime, app, listener. */
export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const rt = await Runtime.open(config, log);
  let https: { cert: Buffer; key: Buffer } | undefined;
  try {
    if (config.tlsCert && config.tlsKey) https = { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) };
    const app = await buildApp(rt, { ...(https ? { https } : {}) });
    await app.listen({ host: config.host, port: config.port });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : config.port;
    const url = `${https ? 'https' : 'http'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    if (rt.cluster) {
      // Peers and redirected clients reach this node at its public URL (the listen address by default).
      const publicUrl = config.publicUrl ?? url;
      if (!config.publicUrl && /^(0\.0\.0\.0|::)$/.test(config.host)) log.warn({ url }, 'DOMICILE_PUBLIC_URL is not set and the node listens on every address: peers will be told an unreachable URL');
      await rt.joinCluster(publicUrl);
      log.info({ node: rt.cluster.id, region: rt.cluster.region, publicUrl }, 'joined the cluster');
    }
    rt.setReady(true);
    let closing: Promise<void> | undefined;
    return {
      url,
      runtime: rt,
      close: () => (closing ??= (async () => {
        rt.setReady(false);
        await app.close();
        await rt.close();
      })()),
    };
  } catch (err) {
    await rt.close();
    throw err;
  }
}

/**
 * `domicile serve`: configuration from the environment (and DOMICILE_CONFIG), then run until
 * SIGTERM/SIGINT (graceful stop); SIGHUP reloads the policy, keeping the old one if the new is invalid.
 * Resolves once the server has shut down; rejects on a start-up failure.
 */
export async function serve(opts: { env: NodeJS.ProcessEnv }): Promise<void> {
  const config = await loadConfig(opts.env);
  const log = pino({ level: config.logLevel, base: { service: 'domicile' } });
  let server: RunningServer;
  try {
    server = await startServer(config, log);
  } catch (err) {
    if (isPolicyError(err)) throw new Error(formatPolicyErrors(err));
    throw err;
  }
  const rt = server.runtime;
  log.info({ url: server.url, regions: [...rt.nodes.keys()], dataDir: config.dataDir, policy: config.policyPath, policyHash: rt.policy.hash }, 'domicile listening');
  for (const b of rt.buckets) log.info({ region: b.region, bucket: b.url, configured: b.configured }, 'region bucket');
  if (rt.adminTokenFile) log.info({ file: rt.adminTokenFile }, 'admin token generated for the embedded default (read it from this file)');
  for (const v of await rt.startupViolations()) log.warn({ tenant: v.tenant, region: v.region, reason: v.reason }, 'tenant placement violates the policy');

  const onHup = () => {
    loadPolicy(config.policyPath).then(async (next) => {
      const violations = await rt.swapPolicy(next);
      log.info({ policyHash: next.hash }, 'policy reloaded');
      // Peers compare announced hashes before placing or moving tenants (POLICY_MISMATCH).
      await rt.cluster?.announcePolicy(next.hash).catch((err: unknown) => log.warn({ err: String((err as Error)?.message ?? err) }, 'announcing the reloaded policy failed'));
      for (const v of violations) log.warn({ tenant: v.tenant, region: v.region, reason: v.reason }, 'tenant placement violates the policy');
    }, (err: unknown) => {
      log.error({ error: isPolicyError(err) ? formatPolicyErrors(err) : String(err) }, 'policy reload refused; keeping the current policy');
    });
  };
  process.on('SIGHUP', onHup);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down');
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      process.off('SIGHUP', onHup);
      server.close().then(() => { log.info('stopped'); resolve(); }, (err: unknown) => { log.error({ err }, 'shutdown failed'); process.exitCode = 1; resolve(); });
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
}
