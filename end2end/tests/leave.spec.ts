import { expect, test } from '@playwright/test';
import { connectedPair } from './fixtures/call';
import { Participant } from './fixtures/participant';

test('Leave removes the tile on the other side, and the next person can call in', async ({ browser }) => {
  const { room, ada, bob } = await connectedPair(browser, 'leave');

  await ada.button('Leave').click();
  await expect(ada.page).toHaveURL(/\/$/);
  await expect(ada.page.getByLabel('Room name')).toBeVisible();
  // Leaving loads the start page: the call's document, with its camera, microphone and
  // connection, is gone; the new one opened none.
  expect(await ada.capturedTracks()).toEqual({ opened: 0, live: 0 });
  expect(await ada.peerConnections()).toEqual({ made: 0, open: 0 });

  await expect(bob.remoteVideo(ada)).toHaveCount(0);
  await expect(bob.status()).toHaveText('Waiting for someone to join — share this link');

  const cat = await Participant.open(browser, 'Cat');
  await cat.joinByLink(room);
  await cat.expectConnected();
  await bob.expectConnected();
  await expect(bob.remoteVideo(cat)).toBeVisible();
  await bob.expectFramesGrow();
  await cat.expectFramesGrow();

  await ada.close();
  await bob.close();
  await cat.close();
});
