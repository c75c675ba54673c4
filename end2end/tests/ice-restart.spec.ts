import { expect, test } from '@playwright/test';
import { connectedPair } from './fixtures/call';
import { blockLoopbackUdp, canBlockNetwork, restoreNetwork } from './fixtures/network';
import type { Participant } from './fixtures/participant';

async function connectionInfo(p: Participant): Promise<{ state: string; ufrag: string }> {
  return p.page.evaluate(() => {
    const pc = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.find((pc) => pc.connectionState !== 'closed');
    return {
      state: pc?.connectionState ?? 'none',
      ufrag: /a=ice-ufrag:(\S+)/.exec(pc?.currentLocalDescription?.sdp ?? '')?.[1] ?? '',
    };
  });
}

test('media cut for a few seconds: the call recovers by ICE restart, not a rejoin', async ({ browser }) => {
  test.skip(!canBlockNetwork(), 'needs root and nft to drop UDP on the loopback interface');
  test.setTimeout(90_000);
  const { ada, bob } = await connectedPair(browser, 'ice');
  const before = await connectionInfo(ada);
  try {
    blockLoopbackUdp();
    for (const p of [ada, bob]) {
      await expect.poll(async () => (await connectionInfo(p)).state, { timeout: 30_000 }).toBe('disconnected');
    }
    await expect(bob.page.getByRole('figure', { name: 'Ada' }).getByText('Reconnecting…')).toBeVisible();
    // Long enough for the app to give up waiting and restart ICE (3 s after `disconnected`).
    await expect.poll(async () => (await connectionInfo(ada)).ufrag, { timeout: 15_000 }).not.toBe(before.ufrag);
  } finally {
    restoreNetwork();
  }
  for (const p of [ada, bob]) {
    await expect.poll(async () => (await connectionInfo(p)).state, { timeout: 30_000 }).toBe('connected');
    await p.expectConnected();
    await p.expectFramesGrow();
    // The same connection, restarted: nobody left or joined again.
    expect(await p.peerConnections()).toEqual({ made: 1, open: 1 });
  }
  await bob.expectAudio('audible');
  await ada.close();
  await bob.close();
});
