import { expect, test } from '@playwright/test';
import { connectedPair } from './fixtures/call';
import { Participant } from './fixtures/participant';

test('mute and camera-off badges reach the others, late joiners included', async ({ browser }) => {
  const { room, ada, bob } = await connectedPair(browser, 'badges');
  const adaOnBob = bob.tile(ada);
  await expect(adaOnBob.getByText('Muted', { exact: true })).toHaveCount(0);

  await ada.button('Mute').click();
  await expect(adaOnBob.getByText('Muted', { exact: true })).toBeVisible();
  await expect(ada.page.getByRole('figure', { name: 'Ada (you)' }).getByText('Muted', { exact: true })).toBeVisible();

  await ada.button('Turn camera off').click();
  await expect(adaOnBob.getByText('Camera off', { exact: true })).toBeVisible();

  const cat = await Participant.open(browser, 'Cat');
  await cat.joinByLink(room);
  await cat.expectConnected();
  const adaOnCat = cat.tile(ada);
  await expect(adaOnCat.getByText('Muted', { exact: true })).toBeVisible();
  await expect(adaOnCat.getByText('Camera off', { exact: true })).toBeVisible();
  await expect(cat.tile(bob).getByText('Muted', { exact: true })).toHaveCount(0);
  await cat.page.getByText(/^People \(3\)$/).click();
  await expect(cat.page.getByRole('list', { name: 'Participants' })).toContainText('Ada (muted, camera off)');

  await ada.button('Unmute').click();
  await expect(adaOnBob.getByText('Muted', { exact: true })).toHaveCount(0);
  await expect(adaOnCat.getByText('Muted', { exact: true })).toHaveCount(0);
  await expect(adaOnCat.getByText('Camera off', { exact: true })).toBeVisible();

  for (const p of [ada, bob, cat]) await p.close();
});
