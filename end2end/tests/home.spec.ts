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

test('the start page loads its own small bundle and fetches the room page ahead', async ({ browser }) => {
  const eve = await Participant.open(browser, 'Eve');
  const page = eve.page;
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  // Every wasm the page asked for, and whether the response came from the browser's cache.
  const wasm = new Map<string, { url: string; fromCache: boolean; done: boolean }>();
  cdp.on('Network.requestWillBeSent', ({ requestId, request }) => {
    if (new URL(request.url).pathname.endsWith('.wasm')) wasm.set(requestId, { url: request.url, fromCache: false, done: false });
  });
  cdp.on('Network.requestServedFromCache', ({ requestId }) => {
    const r = wasm.get(requestId);
    if (r) r.fromCache = true;
  });
  cdp.on('Network.responseReceived', ({ requestId, response }) => {
    const r = wasm.get(requestId);
    if (r && (response.fromDiskCache || response.fromMemoryCache)) r.fromCache = true;
  });
  cdp.on('Network.loadingFinished', ({ requestId }) => {
    const r = wasm.get(requestId);
    if (r) r.done = true;
  });
  const loaded = () => [...wasm.values()].map((r) => new URL(r.url).pathname.split('/').pop()!);
  const full = /^confab\.[\w-]{22}\.wasm$/;
  // The call's own code, split off the room page's wasm (`cargo leptos build --split`).
  const chunk = /^split_call_screen_\w+\.[\w-]{22}\.wasm$/;
  const room = (name: string) => full.test(name) || chunk.test(name);

  await page.goto('/');
  await eve.hydrated();
  expect(loaded()).toHaveLength(1);
  expect(loaded()[0]).toMatch(/^confab-start\.[\w-]{22}\.wasm$/);

  // Starting to fill in the form fetches the room page's wasm and the call's chunk, once.
  await page.getByLabel('Room name').fill(uniqueRoom('ahead'));
  await expect.poll(() => [...wasm.values()].filter((r) => room(new URL(r.url).pathname.split('/').pop()!) && r.done).length).toBe(2);
  await page.getByLabel('Your name').fill('Eve');
  expect(loaded().filter(room)).toHaveLength(2);

  // The room page then takes both from the cache.
  wasm.clear();
  await page.getByRole('button', { name: 'Join room' }).click();
  await expect(page).toHaveURL(/\/room\//);
  await eve.hydrated();
  await expect(eve.status()).toHaveText('Waiting for someone to join — share this link');
  const roomWasm = [...wasm.values()];
  expect(roomWasm.map((r) => new URL(r.url).pathname.split('/').pop()).sort()).toEqual([
    expect.stringMatching(full),
    expect.stringMatching(chunk),
  ]);
  expect(roomWasm.every((r) => r.fromCache)).toBe(true);
  await cdp.detach();
  await eve.close();
});

test('from the start page the camera opens as the room page loads, and the page says so', async ({ browser }) => {
  const eve = await Participant.open(browser, 'Eve');
  // The camera answers only when the test says so, as a browser asking the person would.
  await eve.page.addInitScript(() => {
    const w = window as unknown as { __allowCamera: () => void; __cameraAsks: number };
    const allowed = new Promise<void>((resolve) => (w.__allowCamera = resolve));
    w.__cameraAsks = 0;
    const devices = navigator.mediaDevices;
    const open = devices.getUserMedia.bind(devices);
    devices.getUserMedia = async (constraints) => {
      w.__cameraAsks += 1;
      await allowed;
      return open(constraints);
    };
  });
  await eve.joinFromHome(uniqueRoom('opening'));
  await expect(eve.status()).toHaveText('Starting your camera and microphone…');

  await eve.page.evaluate(() => (window as unknown as { __allowCamera: () => void }).__allowCamera());
  await expect(eve.status()).toHaveText('Waiting for someone to join — share this link');
  await expect(eve.page.getByRole('figure', { name: 'Eve (you)' })).toBeVisible();
  // The call took the camera the room page opened: it asked once.
  expect(await eve.page.evaluate(() => (window as unknown as { __cameraAsks: number }).__cameraAsks)).toBe(1);
  await eve.close();
});
