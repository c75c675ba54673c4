import { expect, test } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';

test('rooms their creators listed appear on the start page with live counts', async ({ browser }) => {
  const listed = uniqueRoom('listed');
  const unlisted = uniqueRoom('unlisted');
  const visitor = await Participant.open(browser, 'Vic');
  await visitor.page.goto('/');
  await visitor.hydrated();
  const openRooms = visitor.page.getByRole('region', { name: 'Open rooms' });
  await expect(openRooms.getByRole('link', { name: listed })).toHaveCount(0);

  const ada = await Participant.open(browser, 'Ada');
  await ada.page.goto('/');
  await ada.hydrated();
  await ada.page.getByLabel('Room name').fill(listed);
  await ada.page.getByLabel('Your name').fill('Ada');
  await ada.page.getByLabel('List this room on the start page').check();
  await ada.page.getByRole('button', { name: 'Join room' }).click();
  await expect(ada.status()).toHaveText(/^Waiting for someone/);
  const cat = await Participant.open(browser, 'Cat');
  await cat.joinFromHome(unlisted);
  await expect(cat.status()).toHaveText(/^Waiting for someone/);

  // The visitor's page refreshes by itself.
  const entry = openRooms.getByRole('listitem').filter({ has: visitor.page.getByRole('link', { name: listed }) });
  await expect(entry).toContainText('1 person');
  const bob = await Participant.open(browser, 'Bob');
  await bob.joinByLink(listed);
  await bob.expectConnected();
  await expect(entry).toContainText('2 people');
  await expect(openRooms.getByRole('link', { name: unlisted })).toHaveCount(0);

  // Following the link leads into the room.
  await entry.getByRole('link').click();
  await expect(visitor.page).toHaveURL(new RegExp(`/room/${listed}$`));
  for (const p of [visitor, ada, bob, cat]) await p.close();
});
