import { expect, test } from '@playwright/test';
import { connectedPair, pairByLink } from './fixtures/call';
import { Coturn } from './fixtures/coturn';
import { blockLoopbackUdp, canBlockNetwork, restoreNetwork } from './fixtures/network';
import type { Participant } from './fixtures/participant';
import { TestServer, testPort } from './fixtures/server';

async function connectionInfo(p: Participant): Promise<{ state: string; ufrag: string }> {
  return p.page.evaluate(() => {
    const pc = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.find((pc) => pc.connectionState !== 'closed');
    return {
      state: pc?.connectionState ?? 'none',
      ufrag: /a=ice-ufrag:(\S+)/.exec(pc?.currentLocalDescription?.sdp ?? '')?.[1] ?? '',
    };
  });
}

/**
 * Cuts the media of a connected pair with `cut`, waits until the app has restarted ICE on its own
 * (its `disconnected` → 3 s → `restartIce()` path: the local ufrag changes), restores it with
 * `restore`, and checks that the same connection carries media again.
 */
async function expectRecoveryByIceRestart(ada: Participant, bob: Participant, cut: () => void, restore: () => void) {
  const before = await connectionInfo(ada);
  try {
    cut();
    for (const p of [ada, bob]) {
      await expect.poll(async () => (await connectionInfo(p)).state, { timeout: 30_000 }).toBe('disconnected');
    }
    await expect(bob.page.getByRole('figure', { name: 'Ada' }).getByText('Reconnecting…')).toBeVisible();
    // Long enough for the app to give up waiting and restart ICE (3 s after `disconnected`).
    await expect.poll(async () => (await connectionInfo(ada)).ufrag, { timeout: 15_000 }).not.toBe(before.ufrag);
  } finally {
    restore();
  }
  for (const p of [ada, bob]) {
    await expect.poll(async () => (await connectionInfo(p)).state, { timeout: 30_000 }).toBe('connected');
    await p.expectConnected();
    await p.expectFramesGrow();
    // The same connection, restarted: nobody left or joined again.
    expect(await p.peerConnections()).toEqual({ made: 1, open: 1 });
  }
  await bob.expectAudio('audible');
}

test('media cut for a few seconds: the call recovers by ICE restart, not a rejoin', async ({ browser }) => {
  test.skip(!canBlockNetwork(), 'needs root and nft to drop UDP on the loopback interface (the relay test below needs neither)');
  test.setTimeout(90_000);
  const { ada, bob } = await connectedPair(browser, 'ice');
  await expectRecoveryByIceRestart(ada, bob, blockLoopbackUdp, restoreNetwork);
  await ada.close();
  await bob.close();
});

// The same recovery without root: all media goes through a coturn, which is frozen for a while.
test('the relay stops for a few seconds: the call recovers by ICE restart, not a rejoin', async ({ browser }) => {
  test.setTimeout(90_000);
  const secret = `ice-restart-secret-${Date.now()}`;
  const coturn = new Coturn(testPort(32), secret, [54000, 54999]);
  const server = new TestServer(testPort(23), ['--turn-urls', coturn.url, '--ice-transport-policy', 'relay'], {
    env: { CONFAB_TURN_SECRET: secret },
  });
  try {
    await coturn.start();
    await server.start();
    const { ada, bob } = await pairByLink(browser, 'ice-relay', server.url);
    await bob.expectFramesGrow();
    for (const p of [ada, bob]) expect(await p.selectedCandidatePairs()).toEqual(['relay/relay']);
    await expectRecoveryByIceRestart(ada, bob, () => coturn.pause(), () => coturn.resume());
    for (const p of [ada, bob]) expect(await p.selectedCandidatePairs()).toEqual(['relay/relay']);
    await ada.close();
    await bob.close();
  } finally {
    coturn.resume();
    await server.kill();
    await coturn.stop();
  }
});
