#!/usr/bin/env node
// Launcher: the CLI is TypeScript run through tsx, so `pnpm install` is the only build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
