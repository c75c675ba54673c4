import { expect, test } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';

test('six people fill a room; the seventh sees "Room is full"', async ({ browser }) => {
  test.setTimeout(180_000);
  const room = uniqueRoom('six');
  const people: Participant[] = [];
  for (const name of ['P1', 'P2', 'P3', 'P4', 'P5', 'P6']) {
    const person = await Participant.open(browser, name);
    // Cameras off keeps six encoders per page cheap on two cores; the room fills all the same.
    await person.joinByLink(room);
    await expect(person.status()).not.toHaveText(/^(Starting|Joining)/);
    await person.button('Turn camera off').click();
    people.push(person);
  }
  await expect(people[5].remoteVideos()).toHaveCount(5);
  await expect(people[0].remoteVideos()).toHaveCount(5);

  const seventh = await Participant.open(browser, 'P7');
  await seventh.joinByLink(room);
  await expect(seventh.status()).toHaveText(/^Room is full/);
  await expect.poll(() => seventh.capturedTracks()).toEqual({ opened: 2, live: 0 });
  await expect(people[0].remoteVideos()).toHaveCount(5);

  for (const p of [...people, seventh]) await p.close();
});
