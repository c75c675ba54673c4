import { chromium, expect, test } from '@playwright/test';
import { connectedPair } from './fixtures/call';
import { chromiumArgs, chromiumPath } from './fixtures/chromium';
import { Participant, uniqueRoom } from './fixtures/participant';
import { tonePath } from './fixtures/tone';

test('a tab that closes without leaving disappears from the others', async ({ browser }) => {
  const { ada, bob } = await connectedPair(browser, 'close');
  await ada.page.close();
  await expect(bob.remoteVideo(ada)).toHaveCount(0, { timeout: 10_000 });
  await expect(bob.status()).toHaveText('Waiting for someone to join — share this link');
  await ada.close();
  await bob.close();
});

test('a tab that crashes disappears from the others within 10 seconds', async ({ browser }) => {
  // Ada in a browser of her own, so that her crash cannot take Bob's renderer with it.
  const other = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs(tonePath) });
  const room = uniqueRoom('crash');
  const ada = await Participant.open(other, 'Ada', undefined, test.info().project.use.baseURL);
  const bob = await Participant.open(browser, 'Bob');
  await ada.joinByLink(room);
  await bob.joinByLink(room);
  await bob.expectConnected();
  await bob.expectFramesGrow();
  const cdp = await ada.context.newCDPSession(ada.page);
  const crashed = Date.now();
  // The renderer dies: no leave message, no clean close from the page.
  // (The command never answers: the page it would answer from is gone.)
  void cdp.send('Page.crash').catch(() => {});
  await expect(bob.remoteVideo(ada)).toHaveCount(0, { timeout: 10_000 });
  test.info().annotations.push({ type: 'vanished after', description: `${Date.now() - crashed} ms` });
  // Gone for good, not hidden: the server announced her leave, Bob closed his connection to her
  // and is alone in the room.
  await expect.poll(() => bob.peerConnections()).toEqual({ made: 1, open: 0 });
  await expect(bob.status()).toHaveText('Waiting for someone to join — share this link');
  await bob.close();
  await other.close();
});
