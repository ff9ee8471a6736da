// Child process entry of startS3Server (s3-server.ts): runs s3rver 3.7.1 until
// told to stop or until its parent goes away. Run with
// `node --openssl-legacy-provider`: s3rver encrypts ListObjectsV2 continuation
// tokens with DES, which OpenSSL 3 only offers in its legacy provider.
// Options come from the environment:
//   S3RVER_PORT       port on 127.0.0.1 (0 = any free one)
//   S3RVER_DIR        data directory
//   S3RVER_BUCKETS    comma-separated bucket names to create
// Prints one line `S3RVER_LISTENING <port>` on stdout once it accepts requests.
import S3rver from 's3rver';

const port = Number(process.env.S3RVER_PORT ?? '0');
const directory = process.env.S3RVER_DIR;
const buckets = (process.env.S3RVER_BUCKETS ?? '').split(',').filter(Boolean);
if (!directory) {
  process.stderr.write('S3RVER_DIR is required\n');
  process.exit(2);
}

const server = new S3rver({
  address: '127.0.0.1',
  port,
  directory,
  silent: true,
  configureBuckets: buckets.map((name) => ({ name, configs: [] })),
});

const shutdown = () => {
  server.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
// The IPC channel closes when the parent exits, even on kill -9: never outlive it.
process.on('disconnect', () => process.exit(0));

try {
  const address = await server.run();
  process.stdout.write(`S3RVER_LISTENING ${address.port}\n`);
} catch (err) {
  process.stderr.write(`s3rver failed to start: ${err?.code ?? ''} ${err?.message ?? err}\n`);
  process.exit(err?.code === 'EADDRINUSE' ? 3 : 1);
}
