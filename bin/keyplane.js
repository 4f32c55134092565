#!/usr/bin/env node
// Runs the TypeScript CLI through tsx's loader, so `npx keyplane` works without a build step.
import { register } from 'tsx/esm/api';

register();
await import(new URL('../src/cli/index.ts', import.meta.url).href);
