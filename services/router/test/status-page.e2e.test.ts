import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDomicile, type DomicileServer } from '@domicile/testkit';

// Debian's chromium, installed by .ci/setup-system.sh (pnpm test runs it first). Never a browser
// that a tool downloads: playwright-core ships none and is only pointed at this binary.
const CHROMIUM = process.env.DOMICILE_CHROMIUM ?? '/usr/bin/chromium';
// Without the background-networking flags Chromium keeps dialling Google's hosts, which this
// machine's closed network refuses. playwright-core gives each launch a fresh, empty profile
// directory of its own (it refuses --user-data-dir in args).
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SCREENSHOT = fileURLToPath(new URL('../../../docs/status-page.png', import.meta.url));

/** Tenants by region, as created below (residency eu defaults to eu-west; acme-gmbh is pinned to eu-central). */
const TENANTS: Record<string, Array<{ id: string; residency: string }>> = {
  'eu-west': ['acme', 'globex', 'initech', 'umbrella', 'hooli', 'wayne-ent'].map((id) => ({ id, residency: 'eu' })),
  'eu-central': [{ id: 'acme-gmbh', residency: 'eu' }],
  'us-east': ['pied-piper', 'vandelay', 'wonka', 'soylent', 'tyrell'].map((id) => ({ id, residency: 'us' })),
};

/** Region name → tenant count as the page shows it. */
async function shownCounts(page: Page): Promise<Record<string, number>> {
  return page.$$eval('#regions tbody tr[data-region]', (rows) =>
    Object.fromEntries(rows.map((r) => [r.getAttribute('data-region')!, Number(r.querySelector('td.tenants')!.textContent)])));
}

/** Tenant ids in the admin table, in page order. */
async function shownTenants(page: Page): Promise<string[]> {
  return page.$$eval('#tenants tbody tr[data-tenant]', (rows) => rows.map((r) => r.getAttribute('data-tenant')!));
}

/** Waits until the admin table shows `n` tenant rows. */
async function tenantRows(page: Page, n: number): Promise<void> {
  // A string, evaluated in the page: this file is type-checked without the DOM library.
  // A function, not a string: a string predicate is eval'd in the page, which the page's CSP forbids.
  await page.waitForFunction(
    (count: number) => (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } })
      .document.querySelectorAll('#tenants tbody tr[data-tenant]').length === count,
    n,
  );
}

describe('status page in headless Chromium', () => {
  let s: DomicileServer;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: run "bash .ci/setup-system.sh" as root (pnpm test does), or point DOMICILE_CHROMIUM at a Chromium binary`);
    }
    s = await startDomicile();
    for (const [region, tenants] of Object.entries(TENANTS)) {
      for (const t of tenants) {
        const res = await s.api('POST', '/v1/tenants', t);
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        expect(res.body.region).toBe(region);
      }
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => { if (/Content Security Policy/i.test(msg.text())) pageErrors.push(msg.text()); });
  });

  afterAll(async () => {
    await browser?.close();
    await s?.dispose();
  });

  it('serves the page with a self-only CSP, no inline script or style, and its script as JavaScript', async () => {
    const html = await fetch(`${s.url}/`);
    const csp = html.headers.get('content-security-policy') ?? '';
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*|https?:/);
    const text = await html.text();
    expect(text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i);
    expect(text).not.toMatch(/\sstyle=|\son[a-z]+=/i);
    const js = await fetch(`${s.url}/status.js`);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(js.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await js.text()).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|localStorage|document\.cookie/);
  });

  it('shows mode, policy hash, nodes and the tenant count of each region from /v1/status', async () => {
    await page.goto(`${s.url}/`);
    await page.waitForSelector('body[data-state="live"]');
    const status = (await s.api('GET', '/v1/status')).body;
    const expected = Object.fromEntries(status.regions.map((r: { name: string; tenants: number }) => [r.name, r.tenants]));
    expect(expected).toMatchObject({ 'eu-west': 6, 'eu-central': 1, 'us-east': 5 });
    expect(await shownCounts(page)).toEqual(expected);
    expect(await page.textContent('#tenants-total')).toBe('12');
    expect(await page.textContent('#mode')).toBe(status.mode);
    expect(await page.getAttribute('#policy', 'title')).toBe(status.policyHash);
    // Replication is on (the default): a number, shown in ms or s.
    expect(typeof status.replication.maxLagMs).toBe('number');
    expect(status.regions.every((r: { replicationLagMs: unknown }) => typeof r.replicationLagMs === 'number')).toBe(true);
    expect(await page.textContent('#replication-lag')).toMatch(/^\d+(\.\d)? (ms|s)$/);
    expect(await page.textContent('#moves')).toBe('0');
    expect(await page.$$eval('#nodes tbody tr[data-node] .pill', (p) => p.map((e) => e.textContent))).toEqual(status.nodes.map(() => 'healthy'));
    expect(await page.textContent('#conn')).toMatch(/^Live/);
  });

  it('refuses a wrong admin token with UNAUTHORIZED and keeps nothing of it', async () => {
    await page.fill('#token', 'definitely-not-the-admin-token');
    await page.click('#use-token');
    await page.waitForSelector('#admin-error:not([hidden])');
    expect(await page.textContent('#admin-error code')).toBe('UNAUTHORIZED');
    expect(await page.isVisible('#tenant-view')).toBe(false);
    expect(await page.evaluate('[sessionStorage.length, localStorage.length]')).toEqual([0, 0]);
  });

  it('lists every tenant once the admin token is pasted, keeping the token in session storage only', async () => {
    await page.fill('#token', s.adminToken);
    await page.click('#use-token');
    await page.waitForSelector('#tenants tbody tr[data-tenant]');
    expect(await page.isVisible('#admin-error')).toBe(false);
    const all = Object.values(TENANTS).flat().map((t) => t.id);
    expect((await shownTenants(page)).sort()).toEqual([...all].sort());
    const row = await page.$$eval('#tenants tbody tr[data-tenant="acme-gmbh"] td', (tds) => tds.map((td) => td.textContent));
    expect(row.slice(0, 3)).toEqual(['acme-gmbh', 'eu', 'eu-central']);
    expect(row[5]).toBe('active');
    // The token field is emptied; the token lives in this tab's sessionStorage and nowhere else.
    expect(await page.inputValue('#token')).toBe('');
    expect(await page.evaluate('Object.values(sessionStorage)')).toEqual([s.adminToken]);
    expect(await page.evaluate('localStorage.length')).toBe(0);
    expect(await page.context().cookies()).toEqual([]);
  });

  it('pages through the tenants with the admin API cursor', async () => {
    await page.selectOption('#page-size', '10');
    await tenantRows(page, 10);
    const first = await shownTenants(page);
    expect(await page.isDisabled('#prev-page')).toBe(true);
    await page.click('#next-page');
    await tenantRows(page, 2);
    const second = await shownTenants(page);
    expect(new Set([...first, ...second]).size).toBe(12);
    expect(await page.isDisabled('#next-page')).toBe(true);
    await page.click('#prev-page');
    await tenantRows(page, 10);
    expect(await shownTenants(page)).toEqual(first);
    await page.selectOption('#page-size', '50');
    await tenantRows(page, 12);
  });

  it('refreshes by itself: a tenant created elsewhere shows up in the counts and the table', async () => {
    expect((await s.api('POST', '/v1/tenants', { id: 'late-arrival', residency: 'us' })).status).toBe(201);
    await expect.poll(async () => (await shownCounts(page))['us-east'], { timeout: 10_000, interval: 250 }).toBe(6);
    await expect.poll(async () => (await shownTenants(page)).includes('late-arrival'), { timeout: 10_000, interval: 250 }).toBe(true);
    expect(await page.textContent('#tenants-total')).toBe('13');
    if (process.env.UPDATE_SCREENSHOT === '1') await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  it('forgets the token on request, also across a reload', async () => {
    await page.click('#forget');
    expect(await page.isVisible('#tenant-view')).toBe(false);
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
    await page.reload();
    await page.waitForSelector('body[data-state="live"]');
    expect(await page.textContent('#admin-state')).toBe('No token in this tab.');
    expect(await page.isVisible('#tenant-view')).toBe(false);
  });

  it('says so when the node is unreachable, and recovers when it is back', async () => {
    await s.stop();
    await page.waitForSelector('body[data-state="unreachable"]', { timeout: 10_000 });
    expect(await page.textContent('#conn')).toMatch(/Node unreachable since .* retrying/);
    // The last known figures stay on screen (dimmed), not blanked.
    expect((await shownCounts(page))['us-east']).toBe(6);
    expect(await page.$$eval('#nodes tbody .pill', (p) => p.map((e) => e.textContent))).not.toContain('healthy');
    await s.restart();
    await page.waitForSelector('body[data-state="live"]', { timeout: 10_000 });
  }, 60_000); // a graceful stop and a restart on a loaded 2-core CI box

  it('shows a hostile string from the server as text, never as HTML', async () => {
    // Tenant and region names are restricted, but a jurisdiction is a free-form label of the policy file.
    const dir = mkdtempSync(path.join(tmpdir(), 'domicile-status-policy-'));
    const hostile = '<img src=x id=injected onerror="window.pwned=1">';
    const policy = path.join(dir, 'placement.yaml');
    writeFileSync(policy, `version: 1\nregions:\n  r1: { jurisdiction: '${hostile}' }\nresidencies:\n  any: { regions: "*" }\n`);
    const other = await startDomicile({ env: { DOMICILE_POLICY: policy } });
    try {
      const p = await page.context().newPage();
      p.on('pageerror', (err) => pageErrors.push(err.message));
      await p.goto(`${other.url}/`);
      await p.waitForSelector('body[data-state="live"]');
      expect(await p.textContent('#regions tbody tr[data-region="r1"] td:nth-child(2)')).toBe(hostile);
      expect(await p.$('#injected')).toBeNull();
      expect(await p.evaluate('window.pwned')).toBeUndefined();
      await p.close();
    } finally {
      await other.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('raised no script error and no CSP violation on any page', () => {
    expect(pageErrors).toEqual([]);
  });
});
