import { expect, test } from '@playwright/test';
import { lookAt } from './fixtures/looks';
import { Participant, uniqueRoom } from './fixtures/participant';

/**
 * The call of two as a person sees it, one page in English and one in Korean: with a control
 * switched on (Mute), then with the chat panel open (on a phone it takes the lower part of the
 * stage; its own Close button is in reach and gives the focus back to the Chat button). Each is
 * checked at a desktop and a phone size by `lookAt` (axe-core's WCAG 2.1 AA rules, no sideways
 * scrolling, no control covered by another) with a screenshot per viewport in the test output.
 */
test('a call of two, with a control on and with the chat open, is readable at both sizes', async ({ browser }, testInfo) => {
  const room = uniqueRoom('call-looks');
  const ada = await Participant.open(browser, 'Ada', undefined, undefined, { locale: 'ko-KR' });
  const bob = await Participant.open(browser, 'Bob');
  await ada.joinByLink(room);
  await bob.joinByLink(room);
  for (const p of [ada, bob]) {
    const remote = p.page.locator('.tile:not(.local) video');
    await expect(remote).toHaveCount(1);
    await expect.poll(() => remote.evaluate((v: HTMLVideoElement) => v.videoWidth)).toBeGreaterThan(0);
  }

  await bob.button('Mute').click();
  await expect(bob.button('Unmute')).toBeVisible();
  await ada.page.getByRole('button', { name: '음소거', exact: true }).click();
  await expect(ada.page.getByRole('button', { name: '음소거 해제', exact: true })).toBeVisible();
  await lookAt(bob.page, testInfo, 'call-en');
  await lookAt(ada.page, testInfo, 'call-ko');

  for (const [p, chat] of [[bob, 'Chat'], [ada, '채팅']] as const) {
    await p.page.getByRole('button', { name: new RegExp(`^${chat}`) }).click();
    await expect(p.page.getByRole('complementary', { name: chat })).toBeVisible();
    await p.page.getByRole('textbox').last().fill(p === bob ? 'Hello from Bob' : '안녕하세요');
    await p.page.keyboard.press('Enter');
  }
  await expect(bob.page.getByText('안녕하세요')).toBeVisible();
  await expect(ada.page.getByText('Hello from Bob')).toBeVisible();
  await lookAt(bob.page, testInfo, 'call-chat-en');
  await lookAt(ada.page, testInfo, 'call-chat-ko');

  // The panel's own Close button, in reach on a phone, closes it and returns to the Chat button.
  await bob.page.setViewportSize({ width: 390, height: 844 });
  await bob.button('Close chat').click();
  await expect(bob.page.getByRole('complementary', { name: 'Chat' })).toHaveCount(0);
  await expect(bob.page.getByRole('button', { name: /^Chat/ })).toBeFocused();

  await ada.close();
  await bob.close();
});
