import { expect, test, type Page } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';
import { TestServer, testPort } from './fixtures/server';
import { lookAt } from './fixtures/looks';

// Rooms of three or more go through the server's SFU: one connection per page, to the server.
const server = new TestServer(testPort(50), ['--sfu-from', '3', '--room-capacity', '10']);
test.beforeAll(async () => server.start());
test.afterAll(async () => {
  await server.stop();
});

/** Connections of the page that are not closed, and how many of those are connected. */
async function connections(page: Page): Promise<{ open: number; connected: number }> {
  return page.evaluate(() => {
    const pcs = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((pc) => pc.connectionState !== 'closed');
    return { open: pcs.length, connected: pcs.filter((pc) => pc.connectionState === 'connected').length };
  });
}

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

/** Per remote tile: frames presented since `watchFrames`, and the longest wait between two. */
async function frameGaps(page: Page): Promise<Record<string, { frames: number; longestGapMs: number }>> {
  return page.evaluate(() => {
    const w = window as unknown as { __frames: Record<string, number[]> };
    const out: Record<string, { frames: number; longestGapMs: number }> = {};
    for (const [name, times] of Object.entries(w.__frames)) {
      let longest = 0;
      for (let i = 1; i < times.length; i++) longest = Math.max(longest, times[i] - times[i - 1]);
      out[name] = { frames: times.length, longestGapMs: Math.round(longest) };
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
  await watchFrames(ada.page);
  await watchFrames(bob.page);

  const cat = await open('Cat');
  await cat.joinByLink(room);
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
    expect(seen.frames, `${viewer.name} saw ${other.name}'s frames`).toBeGreaterThan(30);
    expect(seen.longestGapMs, `${viewer.name}'s longest wait for ${other.name}'s next frame`).toBeLessThanOrEqual(1000);
    console.log(`${viewer.name} → ${other.name}: ${seen.frames} frames, longest gap ${seen.longestGapMs} ms across the switch`);
  }
  // The camera goes up once, as simulcast layers.
  const layers = await cat.page.evaluate(async () => {
    const [pc] = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((c) => c.connectionState !== 'closed');
    const rids: string[] = [];
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'video' && (r.framesEncoded ?? 0) > 0) rids.push(r.rid ?? '');
    });
    return rids.sort();
  });
  expect(layers.length, `simulcast layers sent: ${layers.join(', ')}`).toBeGreaterThanOrEqual(2);
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
