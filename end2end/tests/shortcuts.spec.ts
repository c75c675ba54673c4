import { expect, test } from '@playwright/test';
import { connectedPair } from './fixtures/call';
import { Participant } from './fixtures/participant';

test('keyboard shortcuts work outside text fields, and joins and leaves are announced', async ({ browser }, testInfo) => {
  const { room, ada, bob } = await connectedPair(browser, 'keys');
  const adaTile = bob.page.getByRole('figure', { name: 'Ada' });

  await ada.page.keyboard.press('m');
  await expect(ada.button('Unmute')).toBeVisible();
  await expect(adaTile.getByText('Muted')).toBeVisible();
  await ada.page.keyboard.press('v');
  await expect(ada.button('Turn camera on')).toBeVisible();
  await expect(adaTile.getByText('Camera off')).toBeVisible();
  await ada.page.keyboard.press('V');
  await expect(ada.button('Turn camera off')).toBeVisible();

  await ada.page.keyboard.press('?');
  const help = ada.page.getByRole('dialog', { name: 'Keyboard shortcuts' });
  await expect(help).toContainText('Mute or unmute');
  await ada.page.keyboard.press('Escape');
  await expect(help).toBeHidden();

  // C opens the chat; letters typed into it are text, not shortcuts.
  await ada.page.keyboard.press('c');
  const field = ada.page.getByLabel('Message');
  await expect(field).toBeVisible();
  await field.pressSequentially('mvs');
  await expect(field).toHaveValue('mvs');
  await expect(ada.button('Unmute')).toBeVisible();
  await expect(ada.button('Turn camera off')).toBeVisible();
  await expect(ada.button('Share screen')).toBeVisible();

  // Controls are reachable with Tab and show where the focus is.
  await ada.button('Unmute').focus();
  await ada.page.keyboard.press('Enter');
  await expect(ada.button('Mute')).toBeFocused();
  await expect(adaTile.getByText('Muted')).toHaveCount(0);

  // Screen readers hear who comes and goes.
  const cat = await Participant.open(browser, 'Cat');
  await cat.joinByLink(room);
  await cat.expectConnected();
  await expect(ada.page.locator('[aria-live="polite"].visually-hidden')).toHaveText('Cat joined');
  await cat.expectEveryConnectionDecodes(2);
  // A look at the call with three people, for reviewers (in the test's output folder).
  await ada.page.keyboard.press('c');
  await expect(field).toBeHidden();
  await ada.page.screenshot({ path: testInfo.outputPath('call-3-people.png') });
  await cat.close();
  await expect(ada.page.locator('[aria-live="polite"].visually-hidden')).toHaveText('Cat left');
  for (const p of [ada, bob]) await p.close();
});
