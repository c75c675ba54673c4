import { expect, test } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';

test('two people in one room see and hear each other', async ({ browser }) => {
  const room = uniqueRoom('call');
  const ada = await Participant.open(browser, 'Ada');
  const bob = await Participant.open(browser, 'Bob');

  await ada.joinFromHome(room);
  await expect(ada.status()).toHaveText('Waiting for someone to join — share this link');
  await bob.joinByLink(room);

  await ada.expectConnected();
  await bob.expectConnected();
  await expect(ada.remoteVideo(bob)).toBeVisible();
  await expect(bob.remoteVideo(ada)).toBeVisible();
  await expect(ada.page.getByRole('figure', { name: 'Bob', exact: true })).toBeVisible();
  await expect(bob.page.getByRole('figure', { name: 'Ada', exact: true })).toBeVisible();

  for (const person of [ada, bob]) {
    await person.expectFramesGrow();
    await person.expectAudio('audible');
  }
  await ada.close();
  await bob.close();
});
