import { expect, test } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';

test('a Korean browser gets the Korean UI, and the language can be switched', async ({ browser }) => {
  const room = uniqueRoom('회의실');
  const ada = await Participant.open(browser, 'Ada', undefined, undefined, { locale: 'ko-KR' });
  const bob = await Participant.open(browser, 'Bob');

  await ada.page.goto('/');
  await ada.hydrated();
  await expect(ada.page.locator('html')).toHaveAttribute('lang', 'ko');
  await ada.page.getByLabel('방 이름').fill(room);
  await ada.page.getByLabel('내 이름').fill('에이다');
  await ada.page.getByRole('button', { name: '방 참여' }).click();
  await expect(ada.status()).toHaveText('다른 사람을 기다리는 중 — 이 링크를 공유하세요');

  // An English browser in the same room sees English; both see each other.
  await bob.joinByLink(room);
  await bob.expectConnected();
  await expect(ada.status()).toHaveText('연결됨');
  await ada.page.getByRole('button', { name: '음소거', exact: true }).click();
  await expect(ada.page.getByRole('button', { name: '음소거 해제' })).toBeVisible();
  await expect(bob.page.getByRole('figure', { name: '에이다' }).getByText('Muted')).toBeVisible();
  await expect(ada.page.getByRole('figure', { name: 'Bob' }).getByRole('button', { name: '통계' })).toBeVisible();

  // Switching to English sticks across pages (a cookie), whatever the browser asks for.
  await ada.page.goto('/');
  await ada.hydrated();
  await ada.page.getByLabel('언어').selectOption('en');
  await expect(ada.page.getByLabel('Room name')).toBeVisible();
  await expect(ada.page.locator('html')).toHaveAttribute('lang', 'en');
  await ada.page.reload();
  await expect(ada.page.getByRole('button', { name: 'Join room' })).toBeVisible();
  for (const p of [ada, bob]) await p.close();
});
