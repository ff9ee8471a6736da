export * from './s3-server.ts';
export * from './domicile-server.ts';
export * from './redis-server.ts';
export * from './sqlite-locks.ts';
