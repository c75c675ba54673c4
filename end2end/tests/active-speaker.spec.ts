import { expect, test, type Locator } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';
import { TestServer, testPort } from './fixtures/server';
import { throughSfu } from './fixtures/sfu';

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

test('through the SFU the server names who speaks, and every page highlights that person', async ({ browser }) => {
  test.setTimeout(120_000);
  const server = new TestServer(testPort(53), ['--sfu-from', '3']);
  await server.start();
  try {
    const people = await throughSfu(browser, server.url, 'sfu-speaker');
    const [ada, bob, cat] = people;
    for (const p of [bob, cat]) await p.button('Mute').click();
    const tile = (viewer: Participant, name: string) => viewer.page.getByRole('figure', { name, exact: true });
    for (const viewer of [bob, cat]) await expect(tile(viewer, 'Ada')).toHaveClass(/\bspeaking\b/);
    await expect(tile(ada, 'Ada (you)')).toHaveClass(/\bspeaking\b/);
    await steadily(tile(cat, 'Ada'), true);
    await steadily(tile(cat, 'Bob'), false, 500);
    // The server's word, from the RTP audio levels: each page was told one id, the same.
    const named = people.map((p) => p.speakersNamed.at(-1));
    expect(named[0]).toEqual(expect.any(Number));
    expect(new Set(named).size).toBe(1);

    await ada.button('Mute').click();
    await bob.button('Unmute').click();
    for (const viewer of [ada, cat]) await expect(tile(viewer, 'Bob')).toHaveClass(/\bspeaking\b/);
    await expect(tile(cat, 'Ada')).not.toHaveClass(/\bspeaking\b/);
    await expect(tile(bob, 'Bob (you)')).toHaveClass(/\bspeaking\b/);
    const now = people.map((p) => p.speakersNamed.at(-1));
    expect(new Set(now).size).toBe(1);
    expect(now[0]).toEqual(expect.any(Number));
    expect(now[0]).not.toBe(named[0]);
    for (const p of people) await p.close();
  } finally {
    await server.stop();
  }
});
