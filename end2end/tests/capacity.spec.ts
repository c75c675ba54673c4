import { expect, test } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';
import { SignalingMembers } from './fixtures/signaling';

// Refusing the seventh is the server's business: the room needs six members, not six pages
// sending video (that took minutes on two cores). One real page and five signaling sockets fill
// it; that a six-person mesh connects is mesh.spec.ts's.
test('six people fill a room; the seventh sees "Room is full"', async ({ browser, baseURL }) => {
  const room = uniqueRoom('six');
  const first = await Participant.open(browser, 'P1');
  await first.joinByLink(room);
  await expect(first.status()).toHaveText(/^Waiting for someone/);
  const members = await SignalingMembers.join(browser, baseURL!, room, ['P2', 'P3', 'P4', 'P5', 'P6']);
  // P1 sees the five others arrive: six in the room.
  await expect(first.page.locator('.tiles')).toHaveAttribute('data-count', '6');

  const seventh = await Participant.open(browser, 'P7');
  await seventh.joinByLink(room);
  await expect(seventh.status()).toHaveText(/^Room is full/);
  // The seventh's camera and microphone are released and no connection was made.
  await expect.poll(() => seventh.capturedTracks()).toEqual({ opened: 2, live: 0 });
  expect(await seventh.peerConnections()).toEqual({ made: 0, open: 0 });
  // Nobody in the room noticed.
  await expect(first.page.locator('.tiles')).toHaveAttribute('data-count', '6');
  expect(await members.open()).toBe(5);

  await seventh.close();
  await members.close();
  await first.close();
});
