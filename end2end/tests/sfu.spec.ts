import { expect, test, type Page } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';
import { TestServer, testPort } from './fixtures/server';
import { lookAt } from './fixtures/looks';
import { connections, expectStreamsDecode, throughSfu } from './fixtures/sfu';
import { SignalingMembers } from './fixtures/signaling';

// Rooms of three or more go through the server's SFU: one connection per page, to the server.
// SFU_LOG=confab_media=debug shows the engine's layer wishes, switches and keyframe requests.
const server = new TestServer(testPort(50), ['--sfu-from', '3', '--room-capacity', '10'], { env: { CONFAB_LOG: process.env.SFU_LOG ?? 'warn' } });
test.beforeAll(async () => server.start());
test.afterAll(async () => {
  await server.stop();
});

/**
 * Starts recording when each remote tile's `<video>` presents a frame (requestVideoFrameCallback,
 * which goes on across a change of the element's stream).
 */
async function watchFrames(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { __frames: Record<string, number[]> };
    w.__frames = {};
    for (const video of Array.from(document.querySelectorAll<HTMLVideoElement>('video[aria-label^="Video of "]'))) {
      const name = video.getAttribute('aria-label')!;
      const times: number[] = (w.__frames[name] = []);
      const next = () => video.requestVideoFrameCallback((now) => {
        times.push(now);
        next();
      });
      next();
    }
  });
}

/**
 * Per remote tile: frames presented since `watchFrames`, the longest wait between two, and when
 * it began relative to the page's switch to the SFU (its `confab:sfu-switched` mark).
 */
async function frameGaps(page: Page): Promise<Record<string, { frames: number; longestGapMs: number; fromSwitchMs: number | null }>> {
  return page.evaluate(() => {
    const w = window as unknown as { __frames: Record<string, number[]> };
    const switched = performance.getEntriesByName('confab:sfu-switched')[0]?.startTime;
    const out: Record<string, { frames: number; longestGapMs: number; fromSwitchMs: number | null }> = {};
    for (const [name, times] of Object.entries(w.__frames)) {
      let longest = 0;
      let at = 0;
      for (let i = 1; i < times.length; i++) {
        if (times[i] - times[i - 1] > longest) [longest, at] = [times[i] - times[i - 1], times[i - 1]];
      }
      const fromSwitchMs = switched === undefined ? null : Math.round(at - switched);
      out[name] = { frames: times.length, longestGapMs: Math.round(longest), fromSwitchMs };
    }
    return out;
  });
}

test('the third person switches the room to the SFU: one connection each, nobody stops seeing anybody', async ({ browser }, testInfo) => {
  test.setTimeout(120_000);
  const room = uniqueRoom('sfu');
  const open = (name: string) => Participant.open(browser, name, ['camera', 'microphone'], server.url);
  const ada = await open('Ada');
  const bob = await open('Bob');
  await ada.joinByLink(room);
  await bob.joinByLink(room);
  // Two people: peer to peer, one connection each.
  for (const p of [ada, bob]) {
    await expect(p.remoteVideos()).toHaveCount(1);
    await p.expectEveryConnectionDecodes(1);
  }
  const viaServer = (p: Participant) => p.page.getByText('Through the server: it decrypts');
  await expect(viaServer(ada)).toHaveCount(0);

  // Cat's page is up (its wasm compiled, her preview playing) before the watch starts: a third
  // Chromium starting on two cores stalled the others' decoders for up to 2 s, well before
  // the switch (seen twice, 1.8 and 1.9 s before it). From her click on, everything counts.
  const cat = await open('Cat');
  await cat.page.goto(`/room/${encodeURIComponent(room)}`);
  await cat.hydrated();
  const preview = cat.page.getByLabel('Camera preview');
  await expect.poll(() => preview.evaluate((v: HTMLVideoElement) => v.videoWidth)).toBeGreaterThan(0);
  await watchFrames(ada.page);
  await watchFrames(bob.page);
  await cat.page.getByLabel(cat.words.yourName).fill(cat.name);
  await cat.page.getByRole('button', { name: cat.words.joinNow }).click();
  const people = [ada, bob, cat];
  for (const p of people) {
    await expect(p.remoteVideos()).toHaveCount(2);
    // The direct connection closes once the SFU delivers: one connection left, to the server.
    await expect.poll(() => connections(p.page), { timeout: 30_000 }).toEqual({ open: 1, connected: 1 });
    // It carries both others' video and audio.
    await expect
      .poll(async () => (await p.inbound()).framesDecoded > 0 && (await p.page.evaluate(async () => {
        const [pc] = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((c) => c.connectionState !== 'closed');
        let videos = 0;
        (await pc.getStats()).forEach((r) => {
          if (r.type === 'inbound-rtp' && r.kind === 'video' && (r.framesDecoded ?? 0) > 0) videos++;
        });
        return videos;
      })) === 2, { timeout: 20_000 })
      .toBe(true);
    await p.expectFramesGrow(20);
    await p.expectAudio('audible');
    // Media is decrypted on the server now, and the room's header says so.
    await expect(viaServer(p)).toBeVisible();
  }
  // Through the switch, Ada kept seeing Bob and Bob kept seeing Ada.
  for (const [viewer, other] of [[ada, bob], [bob, ada]] as const) {
    const gaps = await frameGaps(viewer.page);
    const seen = gaps[`Video of ${other.name}`];
    console.log(`${viewer.name} → ${other.name}: ${JSON.stringify(seen)}`);
    expect(seen.frames, `${viewer.name} saw ${other.name}'s frames`).toBeGreaterThan(30);
    expect(seen.longestGapMs, `${viewer.name}'s longest wait for ${other.name}'s next frame`).toBeLessThanOrEqual(1000);
    console.log(`${viewer.name} → ${other.name}: ${seen.frames} frames, longest gap ${seen.longestGapMs} ms across the switch`);
  }
  // The camera goes up once, as simulcast layers: both, once the browser's bandwidth estimate
  // has grown past the half layer's cap (a few seconds).
  const layers = () => cat.page.evaluate(async () => {
    const [pc] = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((c) => c.connectionState !== 'closed');
    const rids: string[] = [];
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'video' && (r.framesEncoded ?? 0) > 0) rids.push(r.rid ?? '');
    });
    return rids.sort();
  });
  await expect.poll(layers, { message: 'simulcast layers sent', timeout: 30_000 }).toEqual(['h', 'm']);
  // The call through the SFU as a person sees it (see fixtures/looks.ts).
  await lookAt(cat.page, testInfo, 'sfu-three');

  // Back to two: peer to peer again.
  await cat.button('Leave').click();
  for (const p of [ada, bob]) {
    await expect(p.remoteVideos()).toHaveCount(1);
    await expect.poll(() => connections(p.page), { timeout: 30_000 }).toEqual({ open: 1, connected: 1 });
    await p.expectFramesGrow(20);
    await expect(viaServer(p)).toHaveCount(0);
  }
  for (const p of people) await p.close();
});

/** Widths of the video frames the page's one open connection decodes, per inbound stream. */
async function inboundWidths(page: Page): Promise<number[]> {
  return page.evaluate(async () => {
    const [pc] = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((c) => c.connectionState !== 'closed');
    const widths: number[] = [];
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video' && r.frameWidth) widths.push(r.frameWidth);
    });
    return widths;
  });
}

test('each tile gets the layer its size needs: small tiles a small layer, a large tile the full one', async ({ browser }) => {
  test.setTimeout(120_000);
  const people = await throughSfu(browser, server.url, 'sfu-layers');
  const [ada, bob, cat] = people;
  // At 640×480 the tiles are small: both come in a layer at most 320 wide.
  await expect.poll(async () => {
    const widths = await inboundWidths(ada.page);
    return widths.length === 2 && widths.every((w) => w <= 320);
  }, { timeout: 20_000 }).toBe(true);
  const small = await inboundWidths(ada.page);
  // The widest layer each of the others sends, once their browsers' bandwidth estimates let
  // them send both.
  const widestSent = (page: Page) => page.evaluate(async () => {
    const [pc] = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((c) => c.connectionState !== 'closed');
    let widest = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'video' && r.frameWidth) widest = Math.max(widest, r.frameWidth);
    });
    return widest;
  });
  const ramp = Date.now();
  for (const p of [bob, cat]) await expect.poll(() => widestSent(p.page), { timeout: 40_000 }).toBeGreaterThan(Math.max(...small));
  const full = Math.min(await widestSent(bob.page), await widestSent(cat.page));
  console.log(`Bob and Cat send their ${full}-wide layers ${Date.now() - ramp} ms after the small tiles were fed`);
  // Once in four runs a grown tile used to stay at the half layer's width (Chromium decoded the
  // full layer's frames at 320 wide although the SFU switched at a 640×480 keyframe); since the
  // SFU asks for a second keyframe after each switch it passed 19 runs in 19 here.
  // A large window: the tiles are large and get the full layer.
  await ada.page.setViewportSize({ width: 1600, height: 1200 });
  const asked = Date.now();
  const dump = () => ada.page.evaluate(async () => {
    const [pc] = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((c) => c.connectionState !== 'closed');
    const d: any[] = [];
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') d.push([r.mid, r.frameWidth, r.framesReceived, r.framesDecoded, r.keyFramesDecoded, r.packetsReceived, r.packetsLost, r.pliCount, r.nackCount, r.framesDropped, r.bytesReceived]);
    });
    const shown = Array.from(document.querySelectorAll<HTMLVideoElement>('video[aria-label^="Video of "]')).map((v) => [v.getAttribute('aria-label'), v.videoWidth, (v.srcObject as MediaStream | null)?.getVideoTracks().map((t) => pc.getReceivers().find((r) => r.track === t) ? pc.getTransceivers().find((x) => x.receiver.track === t)?.mid : 'other')]);
    return JSON.stringify(d) + ' shown ' + JSON.stringify(shown);
  });
  // Compared with what both send now: on two busy cores Chromium may scale a layer down for CPU.
  const fed = async () => {
    const sent = Math.min(await widestSent(bob.page), await widestSent(cat.page));
    return sent > Math.max(...small) && Math.min(...(await inboundWidths(ada.page))) >= sent;
  };
  try {
    await expect.poll(fed, { timeout: 20_000 }).toBe(true);
  } catch (e) {
    console.log(await dump(), await widestSent(bob.page), await widestSent(cat.page));
    for (const p of [bob, cat]) console.log(p.name, await p.page.evaluate(async () => {
      const [pc] = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((c) => c.connectionState !== 'closed');
      const d: any[] = [];
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'outbound-rtp' && r.kind === 'video') d.push([r.rid, r.ssrc, r.frameWidth, r.framesEncoded, r.keyFramesEncoded, r.qualityLimitationReason, r.active]);
      });
      return JSON.stringify(d);
    }));
    throw e;
  }
  console.log(`small tiles: ${small.join(", ")} wide; large tiles: the full layer after ${Date.now() - asked} ms`);
  for (const p of people) await p.close();
});

/**
 * Received so far on the page's one open connection: audio packets, and video payload bytes
 * and frames (a bandwidth probe's padding packets carry no video, so packets are not counted).
 */
async function received(page: Page): Promise<{ audio: number; videoBytes: number; videoFrames: number }> {
  return page.evaluate(async () => {
    const [pc] = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((c) => c.connectionState !== 'closed');
    const sum = { audio: 0, videoBytes: 0, videoFrames: 0 };
    (await pc.getStats()).forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      if (r.kind === 'audio') sum.audio += r.packetsReceived ?? 0;
      if (r.kind === 'video') {
        sum.videoBytes += r.bytesReceived ?? 0;
        sum.videoFrames += r.framesReceived ?? 0;
      }
    });
    return sum;
  });
}

test('past 25 tiles the grid has pages; a tile on another page gets no video while its sound plays', async ({ browser }, testInfo) => {
  test.setTimeout(150_000);
  // 28 people from one address, joining within a second or two.
  const own = new TestServer(testPort(54), ['--sfu-from', '3', '--max-joins-per-ip-per-sec', '100']);
  await own.start();
  try {
    const room = uniqueRoom('sfu-pages');
    const ada = await Participant.open(browser, 'Ada', ['camera', 'microphone'], own.url);
    await ada.page.setViewportSize({ width: 1280, height: 800 });
    await ada.joinByLink(room);
    // 26 people who only signal (muted, camera off), then Bob with a camera and a microphone:
    // Ada's 27th tile, on the second page.
    const names = Array.from({ length: 26 }, (_, i) => `P${i + 2}`);
    const members = await SignalingMembers.join(browser, own.url, room, names, undefined, { muted: true, camera_off: true });
    const bob = await Participant.open(browser, 'Bob', ['camera', 'microphone'], own.url);
    await bob.joinByLink(room);

    const tiles = ada.page.locator('.tiles');
    await expect(tiles).toHaveAttribute('data-count', '25');
    await expect(tiles).toHaveAttribute('data-cols', '5');
    await expect(ada.page.getByText('Page 1 of 2')).toBeVisible();
    await expect(ada.button('Previous page')).toBeDisabled();
    const bobsTile = ada.page.getByRole('figure', { name: 'Bob', exact: true });
    await expect(bobsTile).toBeHidden();
    await expect(ada.page.getByRole('figure', { name: 'P25', exact: true })).toBeVisible();
    await expect(ada.page.getByRole('figure', { name: 'P26', exact: true })).toBeHidden();

    // Bob's sound reaches Ada through the SFU; his video, on a page she does not see, does not.
    await expect.poll(() => connections(ada.page), { timeout: 30_000 }).toEqual({ open: 1, connected: 1 });
    await expect.poll(async () => (await received(ada.page)).audio, { timeout: 20_000 }).toBeGreaterThan(50);
    const before = await received(ada.page);
    await expect.poll(async () => (await received(ada.page)).audio, { timeout: 20_000 }).toBeGreaterThan(before.audio + 100);
    const after = await received(ada.page);
    expect(after.videoBytes - before.videoBytes, 'video bytes of a tile on another page').toBe(0);
    expect(after.videoFrames - before.videoFrames, 'video frames of a tile on another page').toBe(0);
    console.log(`page 1: ${after.audio - before.audio} audio packets from Bob, ${after.videoBytes - before.videoBytes} bytes of his video`);

    // The second page: P26, P27 and Bob, whose video comes and is decoded.
    await ada.button('Next page').click();
    await expect(ada.page.getByText('Page 2 of 2')).toBeVisible();
    await expect(tiles).toHaveAttribute('data-count', '4');
    await expect(bobsTile).toBeVisible();
    await expect(ada.button('Next page')).toBeDisabled();
    await expectStreamsDecode(ada.page, 1);

    await ada.button('Previous page').click();
    await expect(bobsTile).toBeHidden();
    await lookAt(ada.page, testInfo, 'sfu-25-tiles');
    await members.close();
    // Back under 25: one page, no pager.
    await expect(ada.page.getByRole('navigation', { name: 'Pages of people' })).toHaveCount(0);
    await expect(bobsTile).toBeVisible();
    for (const p of [ada, bob]) await p.close();
  } finally {
    await own.stop();
  }
});
