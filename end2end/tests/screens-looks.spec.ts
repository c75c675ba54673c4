import { expect, test } from '@playwright/test';
import { desktop, lookAt, phone } from './fixtures/looks';
import { joinWords, Participant, uniqueRoom } from './fixtures/participant';
import { SignalingMembers } from './fixtures/signaling';

/**
 * Every screen a person meets, as they see it, in English and in Korean: the start page, the
 * pre-join screen, alone in a call with the device pickers open, camera and microphone blocked,
 * a full room, a room's password prompt, a call of three with the stats open, and six in a room
 * (the call of two with the chat open is call-looks.spec.ts). Each is checked at a
 * desktop and a phone size by `lookAt` (axe-core's WCAG 2.1 AA rules, contrast axe could not
 * compute counted as a failure, no sideways scrolling, no control covered by another) and saved
 * as a screenshot per viewport in the test output. Single pages and bare signaling sockets keep
 * it cheap on two cores.
 */
const languages = [
  { lang: 'en', locale: 'en-US', waiting: 'Waiting for someone to join — share this link', tryAgain: 'Try again', password: 'Room password', devices: 'Devices', stats: 'Stats' },
  { lang: 'ko', locale: 'ko-KR', waiting: '다른 사람을 기다리는 중 — 이 링크를 공유하세요', tryAgain: '다시 시도', password: '방 비밀번호', devices: '장치', stats: '통계' },
] as const;
const smallPhone = { label: 'small phone', width: 360, height: 740 };

for (const words of languages) {
  test(`${words.lang}: the start page, the pre-join screen and a call alone are readable at both sizes`, async ({ browser }, testInfo) => {
    const ada = await Participant.open(browser, 'Ada', undefined, undefined, { locale: words.locale });
    await ada.page.goto('/');
    await ada.hydrated();
    await expect(ada.page.locator('html')).toHaveAttribute('lang', words.lang);
    await lookAt(ada.page, testInfo, `home-${words.lang}`);

    await ada.page.goto(`/room/${encodeURIComponent(uniqueRoom('screens'))}`);
    await ada.hydrated();
    const preview = ada.page.locator('video').first();
    await expect.poll(() => preview.evaluate((v: HTMLVideoElement) => v.videoWidth)).toBeGreaterThan(0);
    await expect(ada.page.getByRole('combobox').first()).toHaveValue(/.+/);
    await lookAt(ada.page, testInfo, `prejoin-${words.lang}`, [desktop, phone, smallPhone]);

    await ada.page.setViewportSize({ width: 640, height: 480 });
    await ada.page.getByLabel(joinWords[words.lang].yourName).fill(ada.name);
    await ada.page.getByRole('button', { name: joinWords[words.lang].joinNow }).click();
    await expect(ada.status()).toHaveText(words.waiting);
    await lookAt(ada.page, testInfo, `alone-${words.lang}`);

    const devices = ada.page.getByRole('button', { name: words.devices, exact: true });
    await devices.click();
    await expect(devices).toHaveAttribute('aria-expanded', 'true');
    await expect(ada.page.locator('#device-list')).toBeVisible();
    await lookAt(ada.page, testInfo, `devices-${words.lang}`);
    // Escape closes it again.
    await ada.page.keyboard.press('Escape');
    await expect(devices).toHaveAttribute('aria-expanded', 'false');
    await expect(ada.page.locator('#device-list')).toBeHidden();
    await ada.close();
  });

  test(`${words.lang}: blocked camera, a full room and a password prompt are readable at both sizes`, async ({ browser, baseURL }, testInfo) => {
    const dora = await Participant.open(browser, 'Dora', [], undefined, { locale: words.locale });
    await dora.joinFromHome(uniqueRoom('screens-denied'));
    await expect(dora.page.getByRole('button', { name: words.tryAgain })).toBeVisible();
    await lookAt(dora.page, testInfo, `denied-${words.lang}`);
    await dora.close();

    // Six sockets fill a room of the default capacity.
    const full = uniqueRoom('screens-full');
    const members = await SignalingMembers.join(browser, baseURL!, full, ['M1', 'M2', 'M3', 'M4', 'M5', 'M6']);
    const eve = await Participant.open(browser, 'Eve', undefined, undefined, { locale: words.locale });
    await eve.joinByLink(full);
    await expect(eve.page.getByRole('button', { name: words.tryAgain })).toBeVisible();
    await lookAt(eve.page, testInfo, `full-${words.lang}`);
    await members.close();

    // A socket first into the room sets its password.
    const locked = uniqueRoom('screens-locked');
    const owner = await SignalingMembers.join(browser, baseURL!, locked, ['Owner'], 'open sesame');
    await eve.joinByLink(locked);
    await expect(eve.page.getByLabel(words.password, { exact: true })).toBeVisible();
    await lookAt(eve.page, testInfo, `password-${words.lang}`);
    await owner.close();
    await eve.close();
  });
}

test('a call of three, English and Korean side by side, with the stats open, is readable at both sizes', async ({ browser }, testInfo) => {
  test.setTimeout(90_000);
  const room = uniqueRoom('screens-three');
  const ada = await Participant.open(browser, 'Ada');
  const bob = await Participant.open(browser, 'Bob');
  const cat = await Participant.open(browser, 'Cat', undefined, undefined, { locale: 'ko-KR' });
  for (const p of [ada, bob, cat]) await p.joinByLink(room);
  for (const p of [bob, cat]) {
    const remote = p.page.locator('.tile:not(.local) video');
    await expect(remote).toHaveCount(2);
    for (const v of await remote.all()) await expect.poll(() => v.evaluate((el: HTMLVideoElement) => el.videoWidth)).toBeGreaterThan(0);
  }
  await lookAt(bob.page, testInfo, 'three-en');
  await lookAt(cat.page, testInfo, 'three-ko');

  for (const [p, stats] of [[bob, 'Stats'], [cat, '통계']] as const) {
    await p.page.setViewportSize({ width: 640, height: 480 });
    await p.tile(ada).getByRole('button', { name: stats, exact: true }).click();
    await expect(p.tile(ada).locator('.stats')).toBeVisible();
  }
  await lookAt(bob.page, testInfo, 'three-stats-en');
  await lookAt(cat.page, testInfo, 'three-stats-ko');
  for (const p of [ada, bob, cat]) await p.close();
});

// A room at the mesh's capacity, as the sixth person sees it: five others muted with their
// cameras off (both badges on every tile, the narrowest fit on a phone). The five are signaling
// sockets, so their tiles stay "connecting"; six real pages with thirty connections are
// mesh.spec.ts's, far too slow on two cores to look at as well.
test('six in a room, all five others muted with cameras off, are readable at both sizes', async ({ browser, baseURL }, testInfo) => {
  const room = uniqueRoom('screens-six');
  const members = await SignalingMembers.join(browser, baseURL!, room, ['P1', 'P2', 'P3', 'P4', 'P5'], undefined, {
    muted: true,
    camera_off: true,
  });
  const fay = await Participant.open(browser, 'P6');
  await fay.joinByLink(room);
  await expect(fay.page.locator('.tiles')).toHaveAttribute('data-count', '6');
  await expect(fay.page.locator('.tile:not(.local)').getByText('Camera off', { exact: true })).toHaveCount(5);
  await expect(fay.page.locator('.tile:not(.local)').getByText('Muted', { exact: true })).toHaveCount(5);
  await lookAt(fay.page, testInfo, 'six');
  await fay.close();
  await members.close();
});
