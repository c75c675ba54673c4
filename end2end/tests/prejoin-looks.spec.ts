import { expect, test } from '@playwright/test';
import { expectReadable } from './fixtures/looks';
import { Participant, uniqueRoom } from './fixtures/participant';

/**
 * The pre-join screen as a person sees it: readable (axe-core's WCAG 2.1 AA rules, contrast
 * included, which a test that finds controls by role and name never checks), fitting a phone
 * without sideways scrolling, and saved as a screenshot per viewport in the test output.
 */
const viewports = [
  { label: 'desktop', width: 1280, height: 800 },
  { label: 'phone', width: 390, height: 844 },
  { label: 'small phone', width: 360, height: 740 },
];

for (const viewport of viewports) {
  test(`the pre-join screen is readable and fits at ${viewport.label} size`, async ({ browser }, testInfo) => {
    const bob = await Participant.open(browser, 'Bob');
    await bob.page.setViewportSize({ width: viewport.width, height: viewport.height });
    const room = uniqueRoom('looks');
    await bob.page.goto(`/room/${room}`);
    await bob.hydrated();
    const preview = bob.page.getByLabel('Camera preview');
    await expect.poll(() => preview.evaluate((v: HTMLVideoElement) => v.videoWidth)).toBeGreaterThan(0);
    await expect(bob.page.getByRole('combobox', { name: 'Camera' })).toHaveValue(/.+/);
    await expect(bob.button('Mute')).toBeVisible();

    await expectReadable(bob.page);

    await bob.page.screenshot({ path: testInfo.outputPath(`prejoin-${viewport.width}x${viewport.height}.png`), fullPage: true });
    await bob.close();
  });
}
