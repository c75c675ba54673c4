import { expect, test } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';

/** The ICE username fragment of each open connection's local description. */
async function iceUfrags(person: Participant): Promise<string[]> {
  return person.page.evaluate(() =>
    (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs
      .filter((pc) => pc.connectionState !== 'closed')
      .map((pc) => /a=ice-ufrag:(\S+)/.exec(pc.currentLocalDescription?.sdp ?? '')?.[1] ?? ''),
  );
}

test('joining at the same moment and renegotiating on both sides at once ends connected', async ({ browser }) => {
  const room = uniqueRoom('glare');
  const ada = await Participant.open(browser, 'Ada');
  const bob = await Participant.open(browser, 'Bob');
  const cat = await Participant.open(browser, 'Cat');
  await Promise.all([ada.joinByLink(room), bob.joinByLink(room), cat.joinByLink(room)]);
  for (const p of [ada, bob, cat]) {
    await p.expectConnected();
    await expect(p.remoteVideos()).toHaveCount(2);
  }
  for (const p of [ada, bob, cat]) await p.expectEveryConnectionDecodes(2);

  // Everyone restarts ICE on every connection at the same moment: offers collide on every pair.
  const before = await Promise.all([ada, bob, cat].map(iceUfrags));
  await Promise.all(
    [ada, bob, cat].map((p) =>
      p.page.evaluate(() => (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.forEach((pc) => pc.restartIce())),
    ),
  );
  for (const [i, p] of [ada, bob, cat].entries()) {
    // New ICE credentials on every connection: the restarts were negotiated, not dropped.
    await expect
      .poll(async () => (await iceUfrags(p)).every((ufrag, j) => ufrag !== '' && ufrag !== before[i][j]))
      .toBe(true);
    await expect
      .poll(() => p.page.evaluate(() => (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((pc) => pc.connectionState !== 'closed').map((pc) => `${pc.connectionState}/${pc.signalingState}`)))
      .toEqual(['connected/stable', 'connected/stable']);
  }
  for (const p of [ada, bob, cat]) {
    await p.expectConnected();
    await p.expectEveryConnectionDecodes(2);
  }
  for (const p of [ada, bob, cat]) await p.close();
});
