import { expect, test, type Page } from '@playwright/test';
import { chromiumArgs, chromiumPath } from './fixtures/chromium';
import { Participant, uniqueRoom } from './fixtures/participant';
import { tonePath } from './fixtures/tone';

// Headless Chromium shares a fake 1280×720 screen without a picker only with the fake media UI;
// it also grants every permission, so this file runs in a browser of its own.
test.use({ launchOptions: { executablePath: chromiumPath, args: [...chromiumArgs(tonePath), '--use-fake-ui-for-media-stream'] } });

/** The shape of the video `viewer` shows of `of`: wide (a 16:9 screen) or not (a 4:3 camera). */
async function aspect(viewer: Page, of: string): Promise<number> {
  return viewer.getByLabel(`Video of ${of}`).evaluate((v: HTMLVideoElement) => (v.videoHeight ? v.videoWidth / v.videoHeight : 0));
}

test('a shared screen replaces the camera for everyone, and stops cleanly either way', async ({ browser }) => {
  test.setTimeout(90_000);
  const room = uniqueRoom('screen');
  const ada = await Participant.open(browser, 'Ada');
  const bob = await Participant.open(browser, 'Bob');
  const cat = await Participant.open(browser, 'Cat');
  for (const p of [ada, bob, cat]) await p.joinByLink(room);
  for (const p of [ada, bob, cat]) await p.expectConnected();
  for (const p of [bob, cat]) await expect.poll(() => aspect(p.page, 'Ada')).toBeCloseTo(4 / 3, 1);

  await ada.button('Share screen').click();
  await expect(ada.button('Stop sharing')).toBeVisible();
  for (const p of [bob, cat]) {
    await expect.poll(() => aspect(p.page, 'Ada'), { timeout: 20_000 }).toBeCloseTo(16 / 9, 1);
    await expect(p.page.getByRole('figure', { name: 'Ada' }).getByText('Presenting')).toBeVisible();
    await p.expectEveryConnectionDecodes(2);
  }
  // No renegotiation: the same connections carry the screen.
  expect(await ada.peerConnections()).toEqual({ made: 2, open: 2 });

  // The browser's own "Stop sharing" ends the track.
  await ada.page.evaluate(() => {
    const track = (window as unknown as { __screens: MediaStreamTrack[] }).__screens[0];
    track.stop();
    track.dispatchEvent(new Event('ended'));
  });
  await expect(ada.button('Share screen')).toBeVisible();
  for (const p of [bob, cat]) {
    await expect.poll(() => aspect(p.page, 'Ada'), { timeout: 20_000 }).toBeCloseTo(4 / 3, 1);
    await expect(p.page.getByRole('figure', { name: 'Ada' }).getByText('Presenting')).toHaveCount(0);
  }

  // Again, stopped with the app's own button this time; mute still works meanwhile.
  await ada.button('Share screen').click();
  await expect.poll(() => aspect(bob.page, 'Ada'), { timeout: 20_000 }).toBeCloseTo(16 / 9, 1);
  await ada.button('Mute').click();
  await expect(bob.page.getByRole('figure', { name: 'Ada' }).getByText('Muted')).toBeVisible();
  await ada.button('Stop sharing').click();
  await expect.poll(() => aspect(cat.page, 'Ada'), { timeout: 20_000 }).toBeCloseTo(4 / 3, 1);
  const screens = await ada.page.evaluate(() =>
    (window as unknown as { __screens: MediaStreamTrack[] }).__screens.map((t) => t.readyState),
  );
  expect(screens).toEqual(['ended', 'ended']);
  for (const p of [ada, bob, cat]) await p.close();
});
