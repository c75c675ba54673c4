import { expect, test } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';

test('Copy link puts the room address on the clipboard', async ({ browser }) => {
  const room = uniqueRoom('invite');
  const ada = await Participant.open(browser, 'Ada', ['camera', 'microphone', 'clipboard-read', 'clipboard-write']);
  await ada.joinFromHome(room);
  await expect(ada.status()).toHaveText('Waiting for someone to join — share this link');
  await ada.button('Copy link').click();
  await expect(ada.button('Link copied')).toBeVisible();
  expect(await ada.page.evaluate(() => navigator.clipboard.readText())).toBe(ada.page.url());
  await expect(ada.button('Copy link')).toBeVisible();
  await ada.close();
});
