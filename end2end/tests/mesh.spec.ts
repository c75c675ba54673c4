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
