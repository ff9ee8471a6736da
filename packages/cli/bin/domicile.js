#!/usr/bin/env node
// Launcher: the CLI is TypeScript run through tsx, so `pnpm install` is the only build step.
import { register } from 'tsx/esm/api';

// The AWS SDK warns once per process, in several plain-text lines on stderr, that its releases
// after January 2027 need Node 22. Domicile runs on Node 20 (better-sqlite3 12) with an SDK version
// pinned by the lockfile; the warning would break JSON log pipelines. docs/operations.md, "Node 20".
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
await import('../src/main.ts');
