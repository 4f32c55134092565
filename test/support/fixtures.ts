import { test as base } from 'vitest';
import { createTenant, createTestApp, type TestAppOptions } from './harness.js';

/*
 * The per-file set-up of the integration tests as vitest fixtures, in place of a
 * `beforeAll(createTestApp + createTenant) / afterAll(close)` block in every file:
 *
 *   import { it } from '../support/fixtures.js';
 *   it('lists keys', async ({ app: t, tenant }) => { ... });
 *
 * Both are file-scoped: built once, the first time a test of the file asks for them, and shared by
 * the file's tests; `app` is closed when the file is done (close() also fails the file on a response
 * that did not match the OpenAPI document, and keeps the stored responses for the leak check).
 * `tenant` is one account (service key + portal key) on that app; a test that needs a fresh one
 * calls createTenant itself. Suite-level hooks receive them too: `it.beforeAll(({ app }) => ...)`.
 */

/** The fixtures over an app built with these overrides (say `{ bodyLimit: 2048 }`). */
export function appTest(overrides: TestAppOptions = {}) {
  return base
    // vitest reads a fixture's dependencies from this object pattern: it must be one, even empty.
    .extend('app', { scope: 'file' }, async ({}, { onCleanup }) => {
      const t = await createTestApp(overrides);
      onCleanup(() => t.close());
      return t;
    })
    .extend('tenant', { scope: 'file' }, async ({ app }) => createTenant(app));
}

/** The fixtures over an app with the default configuration. */
export const it = appTest();
