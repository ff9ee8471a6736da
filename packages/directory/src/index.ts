export * from './directory.ts';
export { EmbeddedDirectory } from './embedded/embedded-directory.ts';
