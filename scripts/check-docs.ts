/**
 * npm run check:docs: starts the public app on a loopback port (embedded in-memory database), opens
 * /docs in headless Chromium (Debian's package at /usr/bin/chromium, never a downloaded browser) with
 * every request to another origin refused, and checks that the page renders every operation of
 * openapi.yaml. Writes a screenshot to .test-runs/docs.png. Exits non-zero on any failure.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { chromium } from 'playwright-core';
import { parse } from 'yaml';
import { buildApp } from '../src/app.js';
import { createServices } from '../src/services.js';
import { openDatabase } from '../src/db/database.js';
import { DOCUMENT_FILES, ROOT } from './openapi.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Long enough for Swagger UI to fetch and render the document on a loaded 2-core machine. */
const RENDER_TIMEOUT_MS = 30_000;

const doc = parse(readFileSync(path.join(ROOT, DOCUMENT_FILES.public), 'utf8')) as Record<string, any>;
const expected = Object.entries<Record<string, any>>(doc.paths).flatMap(([p, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${p}`));

const database = await openDatabase({});
await database.migrate();
const app = await buildApp({ services: createServices(database), logger: pino({ level: 'silent' }) });
await app.listen({ host: '127.0.0.1', port: 0 });
const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
const profile = mkdtempSync(path.join(os.tmpdir(), 'keyplane-docs-chromium-'));
const foreign: string[] = [];
let failed = false;
try {
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 1280, height: 2000 },
  });
  try {
    const page = browser.pages()[0] ?? (await browser.newPage());
    // The page must work with no internet: any request off this origin is refused and reported.
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(origin) || url.startsWith('data:')) return route.continue();
      foreign.push(url);
      return route.abort();
    });
    await page.goto(`${origin}/docs`, { waitUntil: 'load' });
    await page.waitForSelector('.opblock', { timeout: RENDER_TIMEOUT_MS });
    const shown = await page.$$eval('.opblock-summary', (els) =>
      els.map((el) => {
        const method = el.querySelector('.opblock-summary-method')?.textContent?.trim() ?? '';
        const p = el.querySelector('.opblock-summary-path')?.getAttribute('data-path') ?? el.querySelector('.opblock-summary-path')?.textContent?.trim() ?? '';
        return `${method} ${p.replace(/\u200b/g, '')}`;
      }),
    );
    const title = await page.textContent('.info .title');
    // Branded keyplane (tab title and top-bar logo), citing no section of a contract readers lack.
    const tabTitle = await page.title();
    await page.waitForSelector('.topbar img', { timeout: RENDER_TIMEOUT_MS });
    const logo = await page.getAttribute('.topbar img', 'src');
    const sectionRefs = ((await page.textContent('body')) ?? '').match(/[^\n]{0,40}§[^\n]{0,20}/g) ?? [];
    mkdirSync(path.join(ROOT, '.test-runs'), { recursive: true });
    await page.screenshot({ path: path.join(ROOT, '.test-runs', 'docs.png'), fullPage: false });
    const missing = expected.filter((op) => !shown.includes(op));
    process.stdout.write(`docs page: tab "${tabTitle}", title "${title?.trim()}", ${shown.length} operations shown, ${expected.length} in openapi.yaml\n`);
    if (!title?.includes(doc.info.title)) {
      failed = true;
      process.stderr.write(`the page title does not show "${doc.info.title}"\n`);
    }
    if (!tabTitle.includes('keyplane') || !logo?.startsWith('data:image/svg+xml')) {
      failed = true;
      process.stderr.write(`the page is not branded keyplane: tab title "${tabTitle}", logo ${logo?.slice(0, 40) ?? '(none)'}\n`);
    }
    if (sectionRefs.length > 0) {
      failed = true;
      process.stderr.write(`the page cites contract sections: ${sectionRefs.join(' | ')}\n`);
    }
    if (missing.length > 0 || shown.length !== expected.length) {
      failed = true;
      process.stderr.write(`operations not shown: ${missing.join(', ') || '(none)'}; shown: ${shown.join(', ')}\n`);
    }
    if (foreign.length > 0) {
      failed = true;
      process.stderr.write(`requests to other origins: ${foreign.join(', ')}\n`);
    }
  } finally {
    await browser.close();
  }
} finally {
  await app.close();
  await database.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(failed ? 'check:docs FAILED\n' : 'check:docs passed: /docs lists every route, with no request off this origin\n');
process.exit(failed ? 1 : 0);
