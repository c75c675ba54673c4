import { expect, test, type Locator } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';

/** Samples `tile`'s speaking highlight for `ms`; every sample must be `expected` (no flicker). */
async function steadily(tile: Locator, expected: boolean, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    expect(await tile.evaluate((el) => el.classList.contains('speaking'))).toBe(expected);
    await tile.page().waitForTimeout(100);
  }
}

test('the highlight follows whoever speaks, steadily', async ({ browser }) => {
  test.setTimeout(90_000);
  const room = uniqueRoom('speaker');
  const ada = await Participant.open(browser, 'Ada');
  const bob = await Participant.open(browser, 'Bob');
  const cat = await Participant.open(browser, 'Cat');
  for (const p of [ada, bob, cat]) await p.joinByLink(room);
  for (const p of [ada, bob, cat]) await p.expectConnected();
  // Every fake microphone plays a tone: only Ada stays unmuted.
  for (const p of [bob, cat]) await p.button('Mute').click();

  const tile = (viewer: Participant, name: string) => viewer.page.getByRole('figure', { name, exact: true });
  for (const viewer of [bob, cat]) await expect(tile(viewer, 'Ada')).toHaveClass(/\bspeaking\b/);
  await expect(tile(ada, 'Ada (you)')).toHaveClass(/\bspeaking\b/);
  await steadily(tile(cat, 'Ada'), true);
  await steadily(tile(cat, 'Bob'), false, 500);

  await ada.button('Mute').click();
  await bob.button('Unmute').click();
  for (const viewer of [ada, cat]) {
    await expect(tile(viewer, 'Bob')).toHaveClass(/\bspeaking\b/);
  }
  await expect(tile(cat, 'Ada')).not.toHaveClass(/\bspeaking\b/);
  await steadily(tile(ada, 'Bob'), true);
  for (const p of [ada, bob, cat]) await p.close();
});
