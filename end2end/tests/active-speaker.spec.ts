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

const tile = (viewer: Participant, name: string) => viewer.page.getByRole('figure', { name, exact: true });

/**
 * Every fake microphone plays a tone: Bob and Cat mute, and everyone's highlight goes to Ada and
 * stays; then Ada mutes and Bob unmutes, and it moves to Bob. `afterEach` runs after each.
 */
async function highlightFollowsTheSpeaker([ada, bob, cat]: Participant[], afterEach: () => void = () => {}): Promise<void> {
  for (const p of [bob, cat]) await p.button('Mute').click();
  for (const viewer of [bob, cat]) await expect(tile(viewer, 'Ada')).toHaveClass(/\bspeaking\b/);
  await expect(tile(ada, 'Ada (you)')).toHaveClass(/\bspeaking\b/);
  await steadily(tile(cat, 'Ada'), true);
  await steadily(tile(cat, 'Bob'), false, 500);
  afterEach();

  await ada.button('Mute').click();
  await bob.button('Unmute').click();
  for (const viewer of [ada, cat]) await expect(tile(viewer, 'Bob')).toHaveClass(/\bspeaking\b/);
  await expect(tile(bob, 'Bob (you)')).toHaveClass(/\bspeaking\b/);
  await expect(tile(cat, 'Ada')).not.toHaveClass(/\bspeaking\b/);
  await steadily(tile(ada, 'Bob'), true);
  afterEach();
}

test('the highlight follows whoever speaks, steadily', async ({ browser }) => {
  test.setTimeout(90_000);
  const room = uniqueRoom('speaker');
  const people: Participant[] = [];
  for (const name of ['Ada', 'Bob', 'Cat']) people.push(await Participant.open(browser, name));
  for (const p of people) await p.joinByLink(room);
  for (const p of people) await p.expectConnected();
  await highlightFollowsTheSpeaker(people);
  // Peer to peer every page decides for itself: the server names nobody.
  for (const p of people) expect(p.speakersNamed).toEqual([]);
  for (const p of people) await p.close();
});

test('through the SFU the server names who speaks, and every page highlights that person', async ({ browser }) => {
  test.setTimeout(120_000);
  const server = new TestServer(testPort(53), ['--sfu-from', '3']);
  await server.start();
  try {
    const people = await throughSfu(browser, server.url, 'sfu-speaker');
    // The server's word, from the RTP audio levels: each page was last told one id, the same
    // on every page, first Ada's, then Bob's.
    const named: (number | null | undefined)[] = [];
    await highlightFollowsTheSpeaker(people, () => {
      const last = people.map((p) => p.speakersNamed.at(-1));
      expect(last[0]).toEqual(expect.any(Number));
      expect(new Set(last).size).toBe(1);
      named.push(last[0]);
    });
    expect(named[1]).not.toBe(named[0]);
    for (const p of people) await p.close();
  } finally {
    await server.stop();
  }
});
