import { expect, test, type Page } from '@playwright/test';
import { chromiumArgs, chromiumPath } from './fixtures/chromium';
import type { Participant } from './fixtures/participant';
import { TestServer, testPort } from './fixtures/server';
import { blockLoopbackUdp, canBlockNetwork, restoreNetwork } from './fixtures/network';
import { connections, expectAudioOf, expectStreamsDecode, throughSfu } from './fixtures/sfu';
import { tonePath } from './fixtures/tone';

// The controls of a call, through the server's SFU (rooms of three here) rather than the mesh.
// Screen sharing needs the fake media UI (see screen-share.spec.ts), hence a browser of its own.
test.use({ launchOptions: { executablePath: chromiumPath, args: [...chromiumArgs(tonePath), '--use-fake-ui-for-media-stream'] } });
const server = new TestServer(testPort(51), ['--sfu-from', '3']);
test.beforeAll(async () => server.start());
test.afterAll(async () => {
  await server.stop();
});

/** The label of the camera track the page's one open connection sends. */
async function sentCamera(page: Page): Promise<string | undefined> {
  return page.evaluate(() => {
    const [pc] = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((c) => c.connectionState !== 'closed');
    return pc?.getSenders().find((s) => s.track?.kind === 'video')?.track?.label;
  });
}

/** The shape of the video `viewer` shows of `of`: wide (a 16:9 screen) or not (a 4:3 camera). */
async function aspect(viewer: Participant, of: Participant): Promise<number> {
  return viewer.remoteVideo(of).evaluate((v: HTMLVideoElement) => (v.videoHeight ? v.videoWidth / v.videoHeight : 0));
}

test('through the SFU, mute, camera off, a camera switch and a shared screen reach everyone', async ({ browser }) => {
  test.setTimeout(150_000);
  const people = await throughSfu(browser, server.url, 'sfu-controls');
  const [ada, bob, cat] = people;
  const others = [bob, cat];

  // Mute silences Ada's voice only: Bob still hears Cat on the same connection.
  for (const p of others) await expectAudioOf(p, ada.name, 'audible');
  await ada.button('Mute').click();
  for (const p of others) {
    await expectAudioOf(p, ada.name, 'silent');
    await expect(p.tile(ada).getByText('Muted')).toBeVisible();
  }
  await expectAudioOf(bob, cat.name, 'audible');
  await ada.button('Unmute').click();
  for (const p of others) await expectAudioOf(p, ada.name, 'audible');

  // Camera off sends black frames (about one a second), which the SFU still forwards.
  for (const p of others) await expect.poll(() => p.brightness(p.remoteVideo(ada))).toBeGreaterThan(20);
  await ada.button('Turn camera off').click();
  for (const p of others) await expect.poll(() => p.brightness(p.remoteVideo(ada)), { timeout: 15_000 }).toBeLessThan(3);
  await ada.button('Turn camera on').click();
  for (const p of others) await expect.poll(() => p.brightness(p.remoteVideo(ada)), { timeout: 15_000 }).toBeGreaterThan(20);

  // A camera switch replaces the track the SFU connection sends; the old camera is released.
  await ada.openDevices();
  await ada.cameraPicker().selectOption({ label: 'fake_device_2' });
  await expect.poll(() => sentCamera(ada.page)).toBe('fake_device_2');
  await expect.poll(() => ada.liveCameras()).toEqual(['fake_device_2']);
  for (const p of others) await p.expectFramesGrow(20);

  // A shared screen takes the camera's place for everyone, and gives it back.
  for (const p of others) await expect.poll(() => aspect(p, ada)).toBeCloseTo(4 / 3, 1);
  await ada.button('Share screen').click();
  await expect(ada.button('Stop sharing')).toBeVisible();
  for (const p of others) {
    await expect.poll(() => aspect(p, ada), { timeout: 20_000 }).toBeCloseTo(16 / 9, 1);
    await expect(p.tile(ada).getByText('Presenting')).toBeVisible();
  }
  await ada.button('Stop sharing').click();
  for (const p of others) {
    await expect.poll(() => aspect(p, ada), { timeout: 20_000 }).toBeCloseTo(4 / 3, 1);
    await expect(p.tile(ada).getByText('Presenting')).toHaveCount(0);
  }
  // All of it on the one connection each.
  for (const p of people) expect(await connections(p.page)).toEqual({ open: 1, connected: 1 });
  for (const p of people) await p.close();
});

test('the server restarts under a call through the SFU: everyone is back on one new connection each', async ({ browser }) => {
  test.setTimeout(150_000);
  const own = new TestServer(testPort(52), ['--sfu-from', '3']);
  await own.start();
  try {
    const people = await throughSfu(browser, own.url, 'sfu-restart');
    for (const p of people) await p.expectFramesGrow(20);

    // The media goes through the process that dies: nothing flows until it is back.
    await own.kill();
    for (const p of people) await expect(p.status()).toHaveText(/^Reconnecting to the server/);
    await own.start();
    const restarted = Date.now();
    for (const p of people) {
      await expect(p.status()).toHaveText('Connected', { timeout: 20_000 });
      await expect(p.remoteVideos()).toHaveCount(2);
      await expect.poll(() => connections(p.page), { timeout: 30_000 }).toEqual({ open: 1, connected: 1 });
      await p.expectEveryConnectionDecodes(1, 20);
    }
    console.log(`through the SFU again ${Date.now() - restarted} ms after the server started`);
    for (const p of people) {
      for (const other of people.filter((o) => o !== p)) await expectAudioOf(p, other.name, 'audible');
    }
    for (const p of people) await p.close();
  } finally {
    await own.kill();
  }
});

test('five people through the SFU: one connection each, four videos decoded and four voices heard', async ({ browser }) => {
  test.setTimeout(150_000);
  const people = await throughSfu(browser, server.url, 'sfu-five', ['Ada', 'Bob', 'Cat', 'Dan', 'Eve']);
  for (const p of people) {
    await expectStreamsDecode(p.page, 4);
    for (const other of people.filter((o) => o !== p)) await expectAudioOf(p, other.name, 'audible');
  }
  for (const p of people) await p.close();
});

/** The page's one open connection: its state and local ICE username fragment. */
async function sfuConnection(page: Page): Promise<{ state: string; ufrag: string }> {
  return page.evaluate(() => {
    const pc = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.find((c) => c.connectionState !== 'closed');
    return {
      state: pc?.connectionState ?? 'none',
      ufrag: /a=ice-ufrag:(\S+)/.exec(pc?.currentLocalDescription?.sdp ?? '')?.[1] ?? '',
    };
  });
}

test('media to the SFU cut for a few seconds: each page restarts ICE on its one connection and the call goes on', async ({ browser }) => {
  test.skip(!canBlockNetwork(), 'needs root and nft to drop UDP on the loopback interface');
  test.setTimeout(120_000);
  const people = await throughSfu(browser, server.url, 'sfu-ice');
  const before = await Promise.all(people.map((p) => sfuConnection(p.page)));
  const made = await Promise.all(people.map((p) => p.peerConnections()));
  try {
    blockLoopbackUdp();
    for (const p of people) {
      await expect.poll(async () => (await sfuConnection(p.page)).state, { timeout: 30_000 }).toBe('disconnected');
    }
    // Each page gives up waiting and offers the SFU fresh ICE credentials.
    for (const [i, p] of people.entries()) {
      await expect.poll(async () => (await sfuConnection(p.page)).ufrag, { timeout: 15_000 }).not.toBe(before[i].ufrag);
    }
  } finally {
    restoreNetwork();
  }
  const restored = Date.now();
  for (const p of people) {
    await expect.poll(async () => (await sfuConnection(p.page)).state, { timeout: 30_000 }).toBe('connected');
    await expectStreamsDecode(p.page, 2);
  }
  console.log(`every page decoding both others again ${Date.now() - restored} ms after the network came back`);
  // The same connections, restarted: none was made anew.
  expect(await Promise.all(people.map((p) => p.peerConnections()))).toEqual(made);
  await expectAudioOf(people[0], 'Bob', 'audible');
  for (const p of people) await p.close();
});

test('through the SFU each tile\'s stats panel reads that person\'s own streams', async ({ browser }) => {
  test.setTimeout(90_000);
  const people = await throughSfu(browser, server.url, 'sfu-stats');
  const [ada, , cat] = people;
  // Cat sends black frames and silence: next to Bob's picture, a trickle.
  await cat.button('Mute').click();
  await cat.button('Turn camera off').click();
  // A value of the stats panel Ada opens on `name`'s tile, and its number.
  const value = (name: string, what: string) => ada.page.getByRole('figure', { name, exact: true })
    .getByRole('group', { name: `Connection to ${name}` })
    .locator('dt', { hasText: what }).locator('xpath=following-sibling::dd[1]');
  const number = async (name: string, what: string) => Number((await value(name, what).textContent())!.split(' ')[0]);
  for (const name of ['Bob', 'Cat']) {
    await ada.page.getByRole('figure', { name, exact: true }).getByRole('button', { name: 'Stats' }).click();
    await expect(value(name, 'Receiving')).toHaveText(/^[1-9]\d* kbit\/s$/);
    await expect(value(name, 'Codec')).toHaveText('VP8');
    await expect(value(name, 'Video')).toHaveText(/^[1-9]\d*×[1-9]\d*$/);
    await expect(value(name, 'Frame rate')).toHaveText(/^[1-9]\d* fps$/);
    await expect(value(name, 'Round trip')).toHaveText(/^\d+\.\d ms$/);
  }
  // Each panel counts its person's streams only (by the mids the SFU named), not the connection.
  const kbps = { Bob: 0, Cat: 0 };
  await expect.poll(async () => {
    kbps.Bob = await number('Bob', 'Receiving');
    kbps.Cat = await number('Cat', 'Receiving');
    return kbps.Cat * 3 < kbps.Bob;
  }, { message: 'Cat\'s black frames under a third of Bob\'s picture', timeout: 20_000 }).toBe(true);
  console.log(`Ada receives ${kbps.Bob} kbit/s of Bob and ${kbps.Cat} kbit/s of Cat (camera off, muted)`);
  for (const p of people) await p.close();
});
