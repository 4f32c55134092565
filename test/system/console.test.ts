import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, call, createTestApp, recordSecrets, type TestApp } from '../support/harness.js';

/*
 * The operator console end to end in headless Chromium (Debian's /usr/bin/chromium, as
 * scripts/check-docs.ts): every request off the admin listener's origin is refused and reported.
 * Each main page is checked with axe-core (no serious or critical violation) and saved as a
 * screenshot under docs/console/ for docs/console.md.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = path.resolve(import.meta.dirname, '../../docs/console');
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let t: TestApp;
let origin: string;
let profile: string;
let browser: BrowserContext;
let page: Page;
const foreign: string[] = [];

async function accessible(name: string): Promise<void> {
  // Evaluated through the debugging protocol: the page's CSP (rightly) refuses an injected inline script.
  await page.evaluate(AXE);
  // A string, run in the page (this file is compiled without the DOM's types).
  const found = await page.evaluate(`axe.run().then((r) => r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => v.id + ' (' + v.nodes.length + ')'))`);
  expect(found, `axe on ${name}`).toEqual([]);
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  t = await createTestApp();
  await t.admin.listen({ host: '127.0.0.1', port: 0 });
  origin = `http://127.0.0.1:${(t.admin.server.address() as AddressInfo).port}`;
  mkdirSync(SHOTS, { recursive: true });
  profile = mkdtempSync(path.join(os.tmpdir(), 'keyplane-console-chromium-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 1280, height: 800 },
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.on('dialog', (d) => void d.accept());
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin)) return route.continue();
    foreign.push(url);
    return route.abort();
  });
});

afterAll(async () => {
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await t?.close();
});

const verifyOf = (key: string) => call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key, verb: 'call' } });

describe('the operator console in a browser', () => {
  let accountId = '';
  let serviceKey = '';
  let minted: { id: string; plaintext: string }[] = [];

  it('refuses a verify token, signs in with an admin token', async () => {
    const verify = await t.services.operatorTokens.create({ name: 'e2e-verify', scope: 'verify' }, { actor: { kind: 'portal', keyId: null, keyPrefix: 'test' }, meta: { requestId: null, ip: null, userAgent: 'vitest' }, now: t.clock.now() });
    recordSecrets(verify.plaintext_key);
    await page.goto(`${origin}/console`);
    await accessible('sign-in');
    await shot('sign-in');
    await page.fill('#token', verify.plaintext_key);
    await page.click('button[type=submit]');
    await expect.poll(() => page.textContent('#sign-in-error')).toContain('needs scope admin');
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('button[type=submit]');
    await page.waitForURL(`${origin}/console/accounts`);
    expect(await page.textContent('nav')).toContain('Signed in as bootstrap');
  });

  it('creates an account and issues a service key whose plaintext is shown once', async () => {
    await page.fill('#name', 'Acme agents');
    await page.click('text=Create account');
    await page.waitForURL(/\/console\/accounts\/[0-9a-f-]{36}$/);
    accountId = page.url().split('/').pop()!;
    await page.fill('#sk-name', 'fleet manager');
    await page.click('text=Issue service key');
    serviceKey = (await page.textContent('#plaintext'))!.trim();
    recordSecrets(serviceKey);
    expect(serviceKey).toMatch(/^sk_/);
    expect(await page.textContent('.once')).toContain('you will not see this again');
    await shot('account-issued');
    await accessible('account');
    await page.goto(`${origin}/console/accounts/${accountId}`);
    expect(await page.content()).not.toContain(serviceKey);
    await page.goto(`${origin}/console/accounts?q=Acme`);
    expect(await page.textContent('tbody')).toContain('Acme agents');
    await shot('accounts');
  });

  it('finds keys minted through the public API, filters them, shows one with its lineage', async () => {
    minted = [];
    for (const label of ['billing-bot', 'support-bot', 'support-bot-2']) {
      const res = await call(t.app, 'POST', '/v1/keys', { token: serviceKey, headers: { 'idempotency-key': randomUUID() }, body: { name: label, agent_label: label, monthly_cap_cents: 1000 } });
      expect(res.status).toBe(201);
      recordSecrets(res.body.key.plaintext_key);
      minted.push({ id: res.body.key.id, plaintext: res.body.key.plaintext_key });
    }
    const sk = (await t.services.portal.listServiceKeys(accountId))[0]!;
    await page.goto(`${origin}/console/service-keys/${sk.id}`);
    expect(await page.locator('tbody tr').count()).toBe(3);
    await page.fill('#label', 'support');
    await page.click('text=Filter');
    await expect.poll(() => page.locator('tbody tr').count()).toBe(2);
    await shot('keys');
    await accessible('keys');
    await page.goto(`${origin}/console/keys/${minted[0]!.id}`);
    expect(await page.textContent('.timeline')).toContain('first key');
    await accessible('key');
    await shot('key');
  });

  it('suspends and resumes a key: verify refuses it, then accepts it', async () => {
    await page.goto(`${origin}/console/keys/${minted[0]!.id}`);
    expect(await page.textContent('#key-status')).toContain('live');
    await page.fill('#reason', 'investigating a loop');
    await page.click('button:text-is("Suspend")');
    await expect.poll(() => page.textContent('#key-status')).toContain('suspended');
    const refused = await verifyOf(minted[0]!.plaintext);
    expect(refused.body.valid).toBe(false);
    expect(refused.body.reason).toBe('suspended');
    await accessible('key-suspended');
    await shot('key-suspended');
    await page.click('button:text-is("Resume")');
    await expect.poll(() => page.textContent('#key-status')).toContain('live');
    expect((await verifyOf(minted[0]!.plaintext)).body.valid).toBe(true);
  });

  it('rotates a key with an overlap: both keys verify; revoking the successor as leaked stops both', async () => {
    await page.goto(`${origin}/console/keys/${minted[2]!.id}`);
    await page.fill('#overlap', '3600');
    await page.click('button:text-is("Rotate")');
    const successor = (await page.textContent('#plaintext'))!.trim();
    recordSecrets(successor);
    expect(await page.textContent('.once')).toContain('keeps working until');
    expect((await verifyOf(minted[2]!.plaintext)).body.valid).toBe(true);
    expect((await verifyOf(successor)).body.valid).toBe(true);
    expect(await page.textContent('.timeline')).toContain('by an operator');
    expect(await page.textContent('.timeline')).toContain('overlapping');
    await accessible('key-rotated');
    await shot('key-rotated');
    await page.goto(`${origin}/console/keys/${minted[2]!.id}`);
    expect(await page.textContent('#key-status')).toContain('overlapping');
    expect(await page.content()).not.toContain(successor);
    const sk = (await t.services.portal.listServiceKeys(accountId))[0]!;
    await page.goto(`${origin}/console/service-keys/${sk.id}`);
    expect(await page.textContent('tbody')).toContain('overlapping');
    await accessible('keys-lifecycle');
    await shot('keys-lifecycle');
    const successorId = (await verifyOf(successor)).body.key.id as string;
    await page.goto(`${origin}/console/keys/${successorId}`);
    await page.click('button:text-is("Revoke as leaked")');
    await expect.poll(() => page.textContent('#key-status')).toContain('revoked');
    expect((await verifyOf(successor)).body.valid).toBe(false);
    expect((await verifyOf(minted[2]!.plaintext)).body.valid).toBe(false);
    const reasons = await t.database.db
      .execute<{ reason: string }>(sql`select data->>'reason' as reason from compliance_events where subject_key_id = ${successorId} and event_type = 'agent_key_revoked'`)
      .then((r) => (Array.isArray(r) ? r : (r as { rows: { reason: string }[] }).rows));
    expect(reasons.map((r) => r.reason)).toEqual(['leaked']);
  });

  it('revokes a key as leaked from its plaintext: verify refuses it afterwards', async () => {
    expect((await verifyOf(minted[1]!.plaintext)).body.valid).toBe(true);
    await page.goto(`${origin}/console/leaks`);
    await page.fill('#tokens', minted[1]!.plaintext);
    await page.click('text=Revoke as leaked');
    await expect.poll(() => page.textContent('tbody')).toContain('revoked now');
    expect((await verifyOf(minted[1]!.plaintext)).body.valid).toBe(false);
    await page.goto(`${origin}/console/keys/${minted[1]!.id}`);
    expect(await page.textContent('.facts')).toContain('revoked');
  });

  it('verify now: intact through seq N, then the first broken link after a superuser edit', async () => {
    await page.goto(`${origin}/console/accounts/${accountId}/audit`);
    await page.click('text=Verify now');
    await expect.poll(() => page.textContent('#chain-result')).toMatch(/Intact through seq \d+/);
    await accessible('audit');
    await shot('audit');
    const [victim] = await t.database.db.execute<{ id: string }>(sql`select id from compliance_events where account_id = ${accountId} and seq = 2`).then((r) => (Array.isArray(r) ? r : (r as { rows: { id: string }[] }).rows));
    await t.database.db.transaction(async (tx) => {
      await tx.execute(sql`set local session_replication_role = replica`);
      await tx.execute(sql`update compliance_events set data = data || '{"name":"someone else"}'::jsonb where id = ${victim!.id}`);
    });
    await page.click('text=Verify now');
    await expect.poll(() => page.textContent('#chain-result')).toContain('Chain broken');
    expect(await page.textContent('#chain-result')).toContain('seq 2');
    await shot('audit-broken');
  });

  it('the activity chart moves after a burst of verifies', async () => {
    // The counts of the verifies above are written first, so the burst alone moves the chart.
    await t.services.maintenance.flushActivity();
    await page.goto(`${origin}/console/keys/${minted[0]!.id}/activity`);
    const before = Number(await page.getAttribute('#chart', 'data-total'));
    for (let i = 0; i < 20; i++) await call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key: minted[0]!.plaintext, verb: 'call' } });
    await call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key: minted[0]!.plaintext, verb: 'call', cost_cents: 5000, request_id: randomUUID() } });
    await t.services.maintenance.flushActivity();
    await page.reload();
    await expect.poll(async () => Number(await page.getAttribute('#chart', 'data-total'))).toBe(before + 21);
    expect(await page.locator('#chart canvas').count()).toBeGreaterThan(0);
    await accessible('activity');
    await shot('activity');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${origin}/console/accounts/${accountId}/activity`);
    expect(await page.textContent('#top-refused')).toContain(minted[0]!.id);
    await shot('activity-phone');
    const overflow = Number(await page.evaluate('document.documentElement.scrollWidth - window.innerWidth'));
    expect(overflow).toBeLessThanOrEqual(0);
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('is keyboard usable and made no request off its origin', async () => {
    await page.goto(`${origin}/console/accounts`);
    await page.keyboard.press('Tab');
    const first = await page.evaluate('document.activeElement.textContent.trim()');
    expect(first).toBe('keyplane console');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${origin}/console/accounts`);
    expect(foreign).toEqual([]);
  });
});
