import { expect, test } from '@playwright/test';
import { connectedPair } from './fixtures/call';
import { Participant } from './fixtures/participant';

// A server started with `--room-capacity 2`.
test.use({ baseURL: process.env.CONFAB_PAIR_URL });

test('a third person sees "Room is full" and the call goes on', async ({ browser }) => {
  const { room, ada, bob } = await connectedPair(browser, 'full');

  const cat = await Participant.open(browser, 'Cat');
  await cat.joinByLink(room);
  await expect(cat.status()).toHaveText(/^Room is full/);
  await expect(cat.button('Try again')).toBeVisible();
  await expect(cat.page.getByRole('link', { name: 'Back to the start page' })).toBeVisible();
  // Cat's camera and microphone are released and no connection was made.
  await expect.poll(() => cat.capturedTracks()).toEqual({ opened: 2, live: 0 });
  expect(await cat.peerConnections()).toEqual({ made: 0, open: 0 });

  await expect(ada.status()).toHaveText('Connected');
  await bob.expectFramesGrow();

  await ada.close();
  await bob.close();
  await cat.close();
});
