import { expect, test } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';

test('the home page checks the names and remembers yours', async ({ browser }) => {
  const eve = await Participant.open(browser, 'Eve');
  const page = eve.page;
  await page.goto('/');
  await eve.hydrated();
  await expect(page).toHaveTitle('confab');

  await page.getByLabel('Room name').fill('   ');
  await page.getByLabel('Your name').fill('Eve');
  await page.getByRole('button', { name: 'Join room' }).click();
  await expect(page.getByRole('alert')).toHaveText('The room name must not be empty.');
  await expect(page).toHaveURL(/\/$/);

  // Any script works in a room name, and the link carries it.
  const korean = `회의실 ${uniqueRoom('k')}`;
  await page.getByLabel('Room name').fill(korean);
  await page.getByRole('button', { name: 'Join room' }).click();
  await expect(page).toHaveURL(new RegExp(`/room/${encodeURIComponent(korean)}$`));
  expect(page.url()).toContain('/room/%ED%9A%8C%EC%9D%98%EC%8B%A4%20');
  await expect(page.getByRole('heading', { name: korean })).toBeVisible();
  await expect(page).toHaveTitle(`${korean} · confab`);
  await expect(eve.status()).toHaveText('Waiting for someone to join — share this link');

  // Back leaves the call for the start page (the app's own page switch follows the history),
  // and forward comes back to the room's page.
  await page.goBack();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByRole('button', { name: 'Join room' })).toBeVisible();
  await expect(page).toHaveTitle('confab');
  await page.goForward();
  await expect(page.getByRole('heading', { name: korean })).toBeVisible();

  // A link opened later shows the pre-join screen with the remembered name.
  await page.goto(`/room/${uniqueRoom('another')}`);
  await expect(page.getByLabel('Your name')).toHaveValue('Eve');
  await page.getByRole('button', { name: 'Join now' }).click();
  await expect(eve.status()).toHaveText('Waiting for someone to join — share this link');
  await expect(page.getByRole('figure', { name: 'Eve (you)' })).toBeVisible();
  await eve.close();
});

test('a room name that is too long is explained', async ({ page }) => {
  await page.goto(`/room/${'x'.repeat(65)}`);
  await expect(page.getByRole('alert')).toHaveText('The room name must be at most 64 characters.');
  await expect(page.getByRole('link', { name: 'Pick another room' })).toBeVisible();
});
