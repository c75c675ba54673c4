import { expect, test } from '@playwright/test';
import { connectedPair } from './fixtures/call';

test('Mute silences what the other side hears; Unmute brings it back', async ({ browser }) => {
  const { ada, bob } = await connectedPair(browser, 'mute');
  await bob.expectAudio('audible');

  await ada.button('Mute').click();
  await expect(ada.button('Unmute')).toBeVisible();
  await bob.expectAudio('silent');

  await ada.button('Unmute').click();
  await expect(ada.button('Mute')).toBeVisible();
  await bob.expectAudio('audible');

  await ada.close();
  await bob.close();
});
