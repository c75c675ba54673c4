import { expect, test } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';

test('the first person sets a room password; others need it to get in', async ({ browser }) => {
  const room = uniqueRoom('locked');
  const ada = await Participant.open(browser, 'Ada');
  const bob = await Participant.open(browser, 'Bob');

  await ada.page.goto('/');
  await ada.hydrated();
  await ada.page.getByLabel('Room name').fill(room);
  await ada.page.getByLabel('Your name').fill('Ada');
  await ada.page.getByLabel('Room password (optional)').fill('open sesame');
  await ada.page.getByRole('button', { name: 'Join room' }).click();
  await expect(ada.status()).toHaveText(/^Waiting for someone to join/);

  await bob.joinByLink(room);
  await expect(bob.status()).toHaveText('This room has a password.');
  // Refused before joining: nobody saw Bob, and Bob's camera is released.
  await expect(ada.remoteVideos()).toHaveCount(0);
  await expect.poll(() => bob.capturedTracks()).toMatchObject({ live: 0 });

  await bob.page.getByLabel('Room password').fill('open sesam');
  await bob.button('Join with password').click();
  await expect(bob.status()).toHaveText('Wrong password. Check it and try again.');

  await bob.page.getByLabel('Room password').fill('open sesame');
  await bob.button('Join with password').click();
  await ada.expectConnected();
  await bob.expectConnected();
  await bob.expectFramesGrow();
  await ada.expectFramesGrow();
  for (const p of [ada, bob]) await p.close();
});
