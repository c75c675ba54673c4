import { expect, test } from '@playwright/test';
import { Coturn } from './fixtures/coturn';
import { pairByLink } from './fixtures/call';
import { TestServer, testPort } from './fixtures/server';
import { throughSfu } from './fixtures/sfu';

/** Two pages in a relay-only call through `server`: media flows, and only through TURN. */
async function relayOnlyCall(
  browser: import('@playwright/test').Browser,
  server: TestServer,
  label: string,
  during: () => Promise<void> = async () => {},
) {
  const { ada, bob } = await pairByLink(browser, label, server.url);
  await ada.expectFramesGrow();
  await bob.expectFramesGrow();
  await bob.expectAudio('audible');
  for (const p of [ada, bob]) {
    expect(await p.iceTransportPolicies()).toEqual(['relay']);
    expect(await p.selectedCandidatePairs()).toEqual(['relay/relay']);
  }
  await during();
  for (const p of [ada, bob]) await p.close();
}

test('a relay-only call goes through coturn with credentials the server minted', async ({ browser }) => {
  const secret = `coturn-secret-${Date.now()}`;
  const coturn = new Coturn(testPort(30), secret);
  // The secret goes by environment, as README advises (command lines are visible to all users).
  const server = new TestServer(
    testPort(20),
    ['--turn-urls', coturn.url, '--ice-transport-policy', 'relay', '--turn-ttl-secs', '600'],
    { env: { CONFAB_TURN_SECRET: secret } },
  );
  try {
    await coturn.start();
    await server.start();
    await relayOnlyCall(browser, server, 'coturn');
  } finally {
    await server.kill();
    await coturn.stop();
  }
});

test('a relay-only call goes through the embedded TURN server', async ({ browser }) => {
  const server = new TestServer(testPort(21), [
    '--turn-embedded', `127.0.0.1:${testPort(31)}`, '--turn-relay-ports', '53000-53999', '--ice-transport-policy', 'relay',
  ]);
  try {
    await server.start();
    await relayOnlyCall(browser, server, 'embedded-turn', async () => {
      // Each page holds an allocation while the call runs; /metrics reports them.
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const allocations = Number(/^confab_turn_allocations (\d+)$/m.exec(metrics)?.[1]);
      expect(allocations).toBeGreaterThanOrEqual(2);
    });
  } finally {
    await server.kill();
  }
});

test('relay-only through the SFU: three people reach the server\'s media port through the embedded TURN server', async ({ browser }) => {
  test.setTimeout(90_000);
  const server = new TestServer(testPort(24), [
    '--turn-embedded', `127.0.0.1:${testPort(33)}`, '--turn-relay-ports', '52000-52999', '--ice-transport-policy', 'relay',
    '--sfu-from', '3',
  ]);
  try {
    await server.start();
    const people = await throughSfu(browser, server.url, 'sfu-turn');
    for (const p of people) {
      await p.expectEveryConnectionDecodes(1, 20);
      expect(await p.iceTransportPolicies()).toEqual(['relay']);
      // Our end relayed, the SFU's end its own host address (it is on this host).
      expect(await p.selectedCandidatePairs()).toEqual(['relay/host']);
    }
    for (const p of people) await p.close();
  } finally {
    await server.kill();
  }
});
