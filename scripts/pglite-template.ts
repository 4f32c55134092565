/*
 * Builds the embedded database's template (src/db/pglite/template.ts: a new database migrated by the
 * same migrate() as every database): run by `npm ci` / `npm install` (package.json postinstall) and
 * by `npm run pglite:template`. Never fails the install: a
 * missing template only makes the first start of a new data directory slower.
 */
try {
  const { buildTemplate } = await import('../src/db/pglite/template.js');
  const t0 = performance.now();
  const { file, bytes } = await buildTemplate();
  console.log(`keyplane: embedded database template ${file} (${(bytes / 1e6).toFixed(1)} MB, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
} catch (err) {
  console.warn(`keyplane: the embedded database template was not built (${err instanceof Error ? err.message : String(err)}); new data directories will be initialised on first start instead`);
}
