export * from './object-store.ts';
export * from './fs/fs-object-store.ts';
export * from './s3/s3-object-store.ts';
export * from './parse-bucket-url.ts';
export type { S3PutStats } from './s3/lean-put.ts';
