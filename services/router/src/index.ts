/** @domicile/router: the Domicile node — runtime, HTTP API and `serve`. */
export { buildApp } from './app.ts';
export { serve, startServer, type RunningServer } from './serve.ts';
export { Runtime, type LocalNode } from './runtime.ts';
export { secretFiles } from './secrets.ts';
