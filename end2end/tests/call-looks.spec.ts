import { expect, test } from '@playwright/test';
import { expectReadable } from './fixtures/looks';
import { Participant, uniqueRoom } from './fixtures/participant';

/**
 * The call itself as a person sees it, two people in, at a desktop and a phone size: axe-core's
 * WCAG 2.1 AA rules (contrast included, and contrast axe could not compute counts as a
 * failure) with a control switched on (Mute) and the chat panel open, no sideways scrolling,
 * and a screenshot per viewport in the test output.
 */
const viewports = [
  { label: 'desktop', width: 1280, height: 800 },
  { label: 'phone', width: 390, height: 844 },
];

for (const viewport of viewports) {
  test(`the call is readable and fits at ${viewport.label} size`, async ({ browser }, testInfo) => {
    const room = uniqueRoom('call-looks');
    const ada = await Participant.open(browser, 'Ada');
    const bob = await Participant.open(browser, 'Bob');
    await bob.page.setViewportSize({ width: viewport.width, height: viewport.height });
    await ada.joinByLink(room);
    await bob.joinByLink(room);
    await expect(bob.remoteVideos()).toHaveCount(1);
    await expect.poll(() => bob.remoteVideos().first().evaluate((v: HTMLVideoElement) => v.videoWidth)).toBeGreaterThan(0);

    // A control that is on, and the Leave button, are in view.
    await bob.button('Mute').click();
    await expect(bob.button('Unmute')).toBeVisible();
    await expect(bob.button('Leave')).toBeVisible();
    await expectReadable(bob.page);
    await bob.page.screenshot({ path: testInfo.outputPath(`call-${viewport.width}x${viewport.height}.png`) });

    await bob.page.getByRole('button', { name: /^Chat/ }).click();
    await expect(bob.page.getByRole('complementary', { name: 'Chat' })).toBeVisible();
    await expectReadable(bob.page);
    await bob.page.screenshot({ path: testInfo.outputPath(`call-chat-${viewport.width}x${viewport.height}.png`) });

    await ada.close();
    await bob.close();
  });
}
