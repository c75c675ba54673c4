import { expect, test } from '@playwright/test';
import { pairByLink } from './fixtures/call';
import { Participant } from './fixtures/participant';
import { TestServer, testPort } from './fixtures/server';

test('the server dies mid-call: media keeps flowing, signaling comes back, a newcomer reaches everyone', async ({ browser }) => {
  test.setTimeout(120_000);
  const server = new TestServer(testPort(10));
  await server.start();
  try {
    const { room, ada, bob } = await pairByLink(browser, 'restart', server.url);
    await bob.expectFramesGrow();

    await server.kill();
    for (const p of [ada, bob]) await expect(p.status()).toHaveText(/^Reconnecting to the server/);
    // Peer to peer: the call goes on without the server.
    await ada.expectFramesGrow();
    await bob.expectFramesGrow();
    await bob.expectAudio('audible');

    await server.start();
    for (const p of [ada, bob]) {
      await expect(p.status()).toHaveText('Connected');
      await expect(p.remoteVideos()).toHaveCount(1);
    }
    // The same connections carried on: none was torn down or duplicated.
    expect(await ada.peerConnections()).toEqual({ made: 1, open: 1 });
    expect(await bob.peerConnections()).toEqual({ made: 1, open: 1 });

    const cat = await Participant.open(browser, 'Cat', undefined, server.url);
    await cat.joinByLink(room);
    await cat.expectConnected();
    await expect(cat.remoteVideos()).toHaveCount(2);
    await cat.expectEveryConnectionDecodes(2);
    for (const p of [ada, bob]) {
      await expect(p.remoteVideos()).toHaveCount(2);
      await p.expectConnected();
    }
    for (const p of [ada, bob, cat]) await p.close();
  } finally {
    await server.kill();
  }
});

test('a restart by SIGTERM: the server says so, exits cleanly, and everyone is back after', async ({ browser }) => {
  const server = new TestServer(testPort(11));
  await server.start();
  try {
    const closes: number[] = [];
    const { ada, bob } = await pairByLink(browser, 'sigterm', server.url, {}, async (p) => {
      if (p.name !== 'Ada') return;
      await p.page.exposeFunction('__socketClosed', (code: number) => closes.push(code));
      await p.page.addInitScript(() => {
        const Native = window.WebSocket;
        window.WebSocket = class extends Native {
          constructor(url: string | URL, protocols?: string | string[]) {
            super(url, protocols);
            this.addEventListener('close', (e) => (window as unknown as { __socketClosed(c: number): void }).__socketClosed(e.code));
          }
        };
      });
    });

    expect(await server.stop()).toBe(0);
    // The first close is "going away"; reconnect attempts fail until the server is back.
    await expect.poll(() => closes[0]).toBe(1001);
    for (const p of [ada, bob]) await expect(p.status()).toHaveText(/^Reconnecting to the server/);
    await bob.expectFramesGrow();

    await server.start();
    for (const p of [ada, bob]) await p.expectConnected();
    expect(await ada.peerConnections()).toEqual({ made: 1, open: 1 });
    for (const p of [ada, bob]) await p.close();
  } finally {
    await server.kill();
  }
});
