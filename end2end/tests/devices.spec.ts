import { expect, test } from '@playwright/test';
import { connectedPair } from './fixtures/call';

test('switching the microphone keeps mute; the speaker picker routes sound', async ({ browser }) => {
  const { ada, bob } = await connectedPair(browser, 'mic');
  expect(await ada.sentTrackLabel('audio')).toBe('Fake Default Audio Input');
  await ada.button('Mute').click();
  await bob.expectAudio('silent');

  const microphone = ada.page.getByRole('combobox', { name: 'Microphone' });
  await ada.openDevices();
  await microphone.selectOption({ label: 'Fake Audio Input 1' });
  await expect.poll(() => ada.sentTrackLabel('audio')).toBe('Fake Audio Input 1');
  await expect(microphone).toHaveValue(/.+/);
  // Still muted after the switch, and the old microphone is released.
  await bob.expectAudio('silent');
  const live = await ada.page.evaluate(() =>
    (window as unknown as { __tracks: MediaStreamTrack[] }).__tracks.filter((t) => t.kind === 'audio' && t.readyState === 'live').map((t) => t.label),
  );
  expect(live).toEqual(['Fake Audio Input 1']);
  await ada.button('Unmute').click();
  await bob.expectAudio('audible');

  // Bob sends Ada's sound to another output.
  const speaker = bob.page.getByRole('combobox', { name: 'Speaker' });
  await bob.openDevices();
  await speaker.selectOption({ label: 'Fake Audio Output 1' });
  const chosen = await speaker.inputValue();
  expect(chosen).not.toBe('default');
  await expect.poll(() => bob.remoteVideo(ada).evaluate((v: HTMLMediaElement & { sinkId: string }) => v.sinkId)).toBe(chosen);
  await bob.expectAudio('audible');
  for (const p of [ada, bob]) await p.close();
});

test('a camera that is unplugged is replaced, and the pickers follow', async ({ browser }) => {
  const { ada, bob } = await connectedPair(browser, 'unplug');
  await ada.openDevices();
  await expect(ada.cameraPicker().locator('option')).toHaveCount(3);
  expect(await ada.sentTrackLabel('video')).toBe('fake_device_0');
  // The browser now lists only fake_device_2 (fake_device_1 is a depth camera that sends no frames).
  await ada.page.evaluate(() => {
    const devices = navigator.mediaDevices;
    const list = devices.enumerateDevices.bind(devices);
    devices.enumerateDevices = async () =>
      (await list()).filter((d) => d.kind !== 'videoinput' || d.label === 'fake_device_2');
    devices.dispatchEvent(new Event('devicechange'));
  });
  await expect(ada.page.getByRole('alert').filter({ hasText: 'camera was disconnected' })).toHaveText(
    'Your camera was disconnected; now using fake_device_2.',
  );
  await expect(ada.cameraPicker().locator('option')).toHaveCount(1);
  await expect.poll(() => ada.sentTrackLabel('video')).toBe('fake_device_2');
  await bob.expectFramesGrow();
  await ada.expectConnected();
  for (const p of [ada, bob]) await p.close();
});
