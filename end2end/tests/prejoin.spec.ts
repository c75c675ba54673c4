import { expect, test } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';

test('the pre-join screen previews, picks devices and states, and remembers them', async ({ browser }) => {
  const room = uniqueRoom('prejoin');
  const ada = await Participant.open(browser, 'Ada');
  await ada.joinFromHome(room);
  await expect(ada.status()).toHaveText(/^Waiting for someone/);

  const bob = await Participant.open(browser, 'Bob');
  await bob.page.goto(`/room/${room}`);
  await bob.hydrated();
  await expect(bob.page.getByRole('heading', { name: `Join ${room}` })).toBeVisible();
  const preview = bob.page.getByLabel('Camera preview');
  await expect.poll(() => preview.evaluate((v: HTMLVideoElement) => v.videoWidth)).toBeGreaterThan(0);
  // The fake microphone plays a tone: the meter moves.
  const meter = bob.page.getByRole('meter', { name: 'Microphone level' });
  await expect.poll(async () => Number(await meter.getAttribute('value'))).toBeGreaterThanOrEqual(1);

  await bob.page.getByRole('combobox', { name: 'Camera' }).selectOption({ label: 'fake_device_2' });
  await expect
    .poll(() => preview.evaluate((v: HTMLVideoElement) => (v.srcObject as MediaStream | null)?.getVideoTracks()[0]?.label))
    .toBe('fake_device_2');
  await bob.button('Mute').click();
  await expect(bob.button('Unmute')).toBeVisible();
  await bob.page.getByLabel('Your name').fill('Bob');
  await bob.button('Join now').click();

  // In the call: the chosen camera is what Ada receives, and Bob is muted.
  await bob.expectConnected();
  await expect(bob.button('Unmute')).toBeVisible();
  await expect(ada.page.getByRole('figure', { name: 'Bob', exact: true }).getByText('Muted')).toBeVisible();
  await expect.poll(() => bob.sentTrackLabel('video')).toBe('fake_device_2');
  await ada.expectFramesGrow();
  // The preview's camera went into the call: nothing else is left open.
  expect((await bob.capturedTracks()).live).toBe(2);

  // Next time, the choices are remembered.
  await bob.button('Leave').click();
  await bob.page.goto(`/room/${uniqueRoom('next')}`);
  await expect(bob.page.getByLabel('Your name')).toHaveValue('Bob');
  await expect(bob.button('Unmute')).toBeVisible();
  await expect(bob.page.getByRole('combobox', { name: 'Camera' })).toHaveValue(/.+/);
  await expect
    .poll(() => bob.page.getByRole('combobox', { name: 'Camera' }).evaluate((s: HTMLSelectElement) => s.selectedOptions[0]?.textContent?.trim()))
    .toBe('fake_device_2');
  for (const p of [ada, bob]) await p.close();
});

test("a room link's first load is the pre-join screen; the call's own code follows while it is up", async ({ browser }) => {
  const bob = await Participant.open(browser, 'Bob');
  await bob.page.goto(`/room/${uniqueRoom('split')}`);
  await bob.hydrated();
  await expect(bob.page.getByRole('heading', { name: /^Join / })).toBeVisible();
  // The wasm files this page fetched, in the order it asked for them.
  const wasm = () =>
    bob.page.evaluate(() =>
      performance
        .getEntriesByType('resource')
        .filter((e) => new URL(e.name).pathname.endsWith('.wasm'))
        .map((e) => {
          const r = e as PerformanceResourceTiming;
          return { name: new URL(r.name).pathname.split('/').pop()!, start: r.startTime, end: r.responseEnd };
        }),
    );
  await expect.poll(async () => (await wasm()).length).toBe(2);
  const [main, call] = await wasm();
  expect(main.name).toMatch(/^confab\.[\w-]{22}\.wasm$/);
  expect(call.name).toMatch(/^split_call_screen_\w+\.[\w-]{22}\.wasm$/);
  // Asked for only once the page's own wasm was there: not part of the first load.
  expect(call.start).toBeGreaterThanOrEqual(main.end);
  await bob.page.getByLabel('Your name').fill('Bob');
  await bob.button('Join now').click();
  await expect(bob.status()).toHaveText(/^Waiting for someone/);
  await bob.close();
});
