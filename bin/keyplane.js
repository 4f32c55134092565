#!/usr/bin/env node
// Runs the compiled CLI (dist/, written by `npm run build` and by `npm ci`) when the build is newer
// than every source file; otherwise the TypeScript sources through tsx (a development dependency),
// so a checkout that was never built, or was edited since, runs what it holds. The image carries
// dist/ and no src/.
import { existsSync, readdirSync, statSync } from 'node:fs';

const root = new URL('..', import.meta.url);
const stamp = new URL('dist/.built', root);
const src = new URL('src/', root);

function newestSourceMs() {
  let newest = 0;
  for (const e of readdirSync(src, { withFileTypes: true, recursive: true })) {
    newest = Math.max(newest, statSync(`${e.parentPath}/${e.name}`).mtimeMs);
  }
  return newest;
}

const built = existsSync(stamp) && (!existsSync(src) || newestSourceMs() <= statSync(stamp).mtimeMs);
if (built) {
  await import(new URL('dist/cli/index.js', root).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('src/cli/index.ts', root).href);
}
