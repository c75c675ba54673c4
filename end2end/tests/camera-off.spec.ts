import { expect, test } from '@playwright/test';
import { connectedPair } from './fixtures/call';

test('Turn camera off sends black frames; Turn camera on sends a picture again', async ({ browser }) => {
  const { ada, bob } = await connectedPair(browser, 'camera-off');
  const video = bob.remoteVideo(ada);
  await expect.poll(() => bob.brightness(video)).toBeGreaterThan(20);

  await ada.button('Turn camera off').click();
  await expect(ada.button('Turn camera on')).toBeVisible();
  await expect.poll(() => bob.brightness(video)).toBeLessThan(3);
  // Black frames still flow (slowly: a disabled track sends about one frame a second).
  await bob.expectFramesGrow(0);

  await ada.button('Turn camera on').click();
  await expect(ada.button('Turn camera off')).toBeVisible();
  await expect.poll(() => bob.brightness(video)).toBeGreaterThan(20);

  await ada.close();
  await bob.close();
});
