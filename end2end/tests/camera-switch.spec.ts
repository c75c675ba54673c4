import { expect, test } from '@playwright/test';
import { connectedPair } from './fixtures/call';

/** Label of the track Ada's video sender carries, and the remote description Bob holds. */
async function senderTrackLabel(page: import('@playwright/test').Page): Promise<string | undefined> {
  return page.evaluate(() => {
    const pcs = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((pc) => pc.connectionState !== 'closed');
    const sender = pcs[0]?.getSenders().find((s) => s.track?.kind === 'video');
    return sender?.track?.label;
  });
}

async function remoteSdp(page: import('@playwright/test').Page): Promise<string | undefined> {
  return page.evaluate(() => {
    const pcs = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((pc) => pc.connectionState !== 'closed');
    return pcs[0]?.currentRemoteDescription?.sdp;
  });
}

test('switching camera swaps the sent track without renegotiation and keeps mute working', async ({ browser }) => {
  const { ada, bob } = await connectedPair(browser, 'switch');
  const picker = ada.cameraPicker();
  await ada.openDevices();
  await expect(picker).toBeEnabled();
  await expect(picker.locator('option')).toHaveCount(3);
  const selectedLabel = () => picker.evaluate((el: HTMLSelectElement) => el.selectedOptions[0]?.textContent?.trim());
  expect(await senderTrackLabel(ada.page)).toBe('fake_device_0');
  await expect.poll(selectedLabel).toBe('fake_device_0');
  const bobSdpBefore = await remoteSdp(bob.page);
  const adaSdpBefore = await remoteSdp(ada.page);

  await picker.selectOption({ label: 'fake_device_2' });
  await expect.poll(() => senderTrackLabel(ada.page)).toBe('fake_device_2');
  await expect.poll(selectedLabel).toBe('fake_device_2');
  // Ada's own preview shows the new camera.
  await expect
    .poll(() => ada.page.getByLabel('Your camera').evaluate((v: HTMLVideoElement) => (v.srcObject as MediaStream | null)?.getVideoTracks()[0]?.label))
    .toBe('fake_device_2');
  // The old camera was released.
  await expect.poll(() => ada.liveCameras()).toEqual(['fake_device_2']);
  await bob.expectFramesGrow();
  expect(await remoteSdp(bob.page)).toBe(bobSdpBefore);
  expect(await remoteSdp(ada.page)).toBe(adaSdpBefore);

  // The notes' question: after a switch, mute must still silence the other side.
  await bob.expectAudio('audible');
  await ada.button('Mute').click();
  await bob.expectAudio('silent');

  // And the switch keeps mute and camera-off as they were.
  await ada.button('Turn camera off').click();
  await picker.selectOption({ label: 'fake_device_0' });
  await expect.poll(() => senderTrackLabel(ada.page)).toBe('fake_device_0');
  await expect.poll(selectedLabel).toBe('fake_device_0');
  await expect.poll(() => bob.brightness(bob.remoteVideo(ada))).toBeLessThan(3);
  await bob.expectAudio('silent');
  await expect(ada.button('Unmute')).toBeVisible();
  await expect(ada.button('Turn camera on')).toBeVisible();

  await ada.close();
  await bob.close();
});
