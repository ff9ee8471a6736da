export * from './config.ts';
export * from './load-config.ts';
