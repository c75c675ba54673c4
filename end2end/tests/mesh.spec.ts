import { expect, test } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';

test('four people in one room: each sees three tiles, all decoding video and receiving audio', async ({ browser }) => {
  test.setTimeout(120_000);
  const room = uniqueRoom('mesh');
  const people: Participant[] = [];
  for (const name of ['Ada', 'Bob', 'Cat', 'Dan']) {
    const person = await Participant.open(browser, name);
    await person.joinByLink(room);
    people.push(person);
  }
  for (const person of people) {
    await expect(person.status()).toHaveText('Connected', { timeout: 30_000 });
    await expect(person.remoteVideos()).toHaveCount(3);
    for (const other of people.filter((p) => p !== person)) {
      await expect(person.tile(other)).toBeVisible();
    }
    await expect(person.page.locator('.tiles')).toHaveAttribute('data-count', '4');
  }
  for (const person of people) {
    await person.expectEveryConnectionDecodes(3);
    await person.expectAudio('audible');
  }
  // A mesh sends one stream per peer: each sender halves its resolution.
  const sent = await people[0].page.evaluate(async () => {
    const pcs = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs;
    const widths: number[] = [];
    for (const pc of pcs) {
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'outbound-rtp' && r.kind === 'video' && r.frameWidth) widths.push(r.frameWidth);
      });
    }
    return widths;
  });
  expect(sent).toHaveLength(3);
  for (const width of sent) expect(width).toBeLessThanOrEqual(320);
  for (const person of people) await person.close();
});

// The whole mesh at the room's capacity, as cheaply as six pages go: cameras off and microphones
// muted before joining, all six joining at once, and only the connections checked (media is the
// four-page test's). Six renderers with thirty connections keep both cores busy (connecting took
// 25-60 s here), so the six-tile grid's look is screens-looks.spec.ts's, with one page: here an
// axe pass took 15-36 s, and in a full run the test went past 300 s.
test('six people in one room: every page connects to the five others', async ({ browser }) => {
  test.setTimeout(180_000);
  const room = uniqueRoom('mesh6');
  const people: Participant[] = [];
  for (const name of ['P1', 'P2', 'P3', 'P4', 'P5', 'P6']) {
    const person = await Participant.open(browser, name);
    await person.page.goto(`/room/${encodeURIComponent(room)}`);
    await person.hydrated();
    await person.page.getByLabel('Your name').fill(name);
    await person.button('Turn camera off').click();
    await person.button('Mute').click();
    people.push(person);
  }
  for (const person of people) await person.button('Join now').click();
  const connected = (p: Participant) =>
    p.page.evaluate(
      () => (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((pc) => pc.connectionState === 'connected').length,
    );
  for (const person of people) {
    await expect.poll(() => connected(person), { timeout: 120_000 }).toBe(5);
    await expect(person.page.locator('.tiles')).toHaveAttribute('data-count', '6');
  }
  for (const person of people) expect(await person.peerConnections()).toEqual({ made: 5, open: 5 });
  for (const person of people) await person.close();
});
