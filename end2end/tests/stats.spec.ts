import { expect, test } from '@playwright/test';
import { connectedPair } from './fixtures/call';

test('each tile shows its connection stats with live sparklines', async ({ browser }) => {
  const { ada, bob } = await connectedPair(browser, 'stats');
  const tile = bob.page.getByRole('figure', { name: 'Ada', exact: true });
  await tile.getByRole('button', { name: 'Stats' }).click();
  await expect(tile.getByRole('button', { name: 'Hide stats' })).toHaveAttribute('aria-expanded', 'true');
  const panel = tile.getByRole('group', { name: 'Connection to Ada' });
  const value = (what: string) => panel.locator('dt', { hasText: what }).locator('xpath=following-sibling::dd[1]');

  await expect(value('Receiving')).toHaveText(/^[1-9]\d* kbit\/s$/);
  await expect(value('Sending')).toHaveText(/^[1-9]\d* kbit\/s$/);
  await expect(value('Round trip')).toHaveText(/^\d+\.\d ms$/);
  await expect(value('Packet loss')).toHaveText(/^\d+\.\d %$/);
  await expect(value('Codec')).toHaveText(/^(VP8|VP9|H264|AV1)$/);
  // The camera's 640×480, or a 4:3 size Chromium scaled it down to (it adapts the resolution
  // when the encoder is short of CPU, as on a busy two-core machine: 480×360 and 320×240 seen).
  await expect(value('Video')).toHaveText(/^[1-9]\d*×[1-9]\d*$/);
  const [w, h] = (await value('Video').textContent())!.split('×').map(Number);
  expect(w * 3, `${w}×${h} is the camera's 4:3`).toBe(h * 4);
  expect(w).toBeLessThanOrEqual(640);
  await expect(value('Frame rate')).toHaveText(/^[1-9]\d* fps$/);
  // The sparkline grows a point a second.
  const points = () => panel.getByRole('img', { name: /^Received bitrate/ }).locator('polyline').getAttribute('points');
  await expect.poll(async () => (await points())?.split(' ').length ?? 0).toBeGreaterThanOrEqual(3);
  const before = (await points())!.split(' ').length;
  await expect.poll(async () => (await points())!.split(' ').length, { timeout: 10_000 }).toBeGreaterThan(before);

  await tile.getByRole('button', { name: 'Hide stats' }).click();
  await expect(panel).toBeHidden();
  for (const p of [ada, bob]) await p.close();
});
