import { expect, test } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';

test('a page without camera and microphone permission explains what to do', async ({ browser }) => {
  const dora = await Participant.open(browser, 'Dora', []);
  await dora.joinFromHome(uniqueRoom('denied'));
  await expect(dora.status()).toContainText('Camera and microphone access is blocked');
  await expect(dora.status()).toContainText('Try again');
  await expect(dora.button('Try again')).toBeVisible();
  await expect(dora.button('Mute')).toHaveCount(0);

  // Granting access and pressing Try again joins the room.
  await dora.context.grantPermissions(['camera', 'microphone']);
  await dora.button('Try again').click();
  await expect(dora.status()).toHaveText('Waiting for someone to join — share this link');
  await dora.close();
});
