import { expect, test } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';

test('pages hydrate under their Content-Security-Policy, whose nonce their scripts carry', async ({ browser }) => {
  const eve = await Participant.open(browser, 'Eve');
  const response = await eve.page.goto('/');
  const headers = response!.headers();
  const csp = headers['content-security-policy'];
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("frame-ancestors 'none'");
  const nonce = /'nonce-([^']+)'/.exec(csp)![1];
  // Browsers hide a script's nonce from getAttribute; the property keeps it.
  const nonces = await eve.page.locator('script').evaluateAll((scripts) => scripts.map((s) => (s as HTMLScriptElement).nonce));
  expect(nonces.length).toBeGreaterThan(0);
  for (const n of nonces) expect(n).toBe(nonce);
  expect(headers['x-frame-options']).toBe('DENY');
  expect(headers['referrer-policy']).toBe('no-referrer');
  expect(headers['x-content-type-options']).toBe('nosniff');
  expect(headers['permissions-policy']).toContain('camera=(self)');
  expect(headers['strict-transport-security']).toBeUndefined();
  await eve.hydrated();

  // The room page hydrates, opens its socket and its camera under the same policy.
  await eve.joinFromHome(uniqueRoom('csp'));
  await expect(eve.status()).toHaveText('Waiting for someone to join — share this link');
  await expect(eve.page.getByRole('figure', { name: 'Eve (you)' })).toBeVisible();
  // Fails on any violation the page met.
  await eve.close();
});

test('another site cannot frame a page', async ({ page, baseURL }) => {
  const refused = page.waitForEvent('console', (msg) => msg.text().includes("frame-ancestors 'none'"));
  await page.setContent(`<iframe src="${baseURL}/"></iframe>`);
  await refused;
});
