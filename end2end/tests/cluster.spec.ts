import { expect, test } from '@playwright/test';
import { Balancer, Redis } from './fixtures/cluster';
import { Participant, uniqueRoom } from './fixtures/participant';
import { TestServer, testPort } from './fixtures/server';

// How long a dead node's people keep their places (the nodes' --redis-presence-ttl-ms).
const PRESENCE_TTL_MS = 3000;

test('a call across two nodes survives the death of one: its people move over, who cannot is announced as left', async ({ browser }) => {
  test.setTimeout(120_000);
  const redis = new Redis();
  await redis.start();
  const args = ['--redis-url', redis.url, '--redis-presence-ttl-ms', String(PRESENCE_TTL_MS)];
  const [one, two] = [new TestServer(testPort(40), args), new TestServer(testPort(41), args)];
  const balancer = new Balancer(testPort(42), [one.port, two.port]);
  const people: Participant[] = [];
  try {
    await one.start();
    await two.start();
    await balancer.start();
    const room = uniqueRoom('cluster');
    // Ada comes through the balancer (to node one while it lives), Bob straight to node two,
    // Linus straight to node one (he will have nowhere to go).
    const ada = await Participant.open(browser, 'Ada', undefined, balancer.url);
    const bob = await Participant.open(browser, 'Bob', undefined, two.url);
    const linus = await Participant.open(browser, 'Linus', undefined, one.url);
    people.push(ada, bob, linus);
    for (const p of people) await p.joinByLink(room);
    for (const p of people) {
      await p.expectConnected();
      await expect(p.remoteVideos()).toHaveCount(2);
    }
    expect(new Set(balancer.routed)).toEqual(new Set([one.port]));
    await bob.expectEveryConnectionDecodes(2);

    await one.kill();
    // Ada's page reconnects through the balancer, lands on node two and takes her place back.
    await expect(linus.status()).toHaveText(/^Reconnecting to the server/);
    await ada.expectConnected();
    expect(balancer.routed.at(-1)).toBe(two.port);
    // Linus's node is gone and he cannot come back: once its presence expires he has left.
    for (const p of [ada, bob]) await expect(p.remoteVideos()).toHaveCount(1, { timeout: PRESENCE_TTL_MS + 10_000 });
    await expect(bob.remoteVideo(ada)).toBeVisible();
    await expect(ada.remoteVideo(bob)).toBeVisible();
    // The call between Ada and Bob carried on over the same connection.
    await ada.expectFramesGrow();
    await bob.expectFramesGrow();
    expect(await ada.peerConnections()).toEqual({ made: 2, open: 1 });
    expect(await bob.peerConnections()).toEqual({ made: 2, open: 1 });

    // A newcomer on the surviving node meets both.
    const cat = await Participant.open(browser, 'Cat', undefined, balancer.url);
    people.push(cat);
    await cat.joinByLink(room);
    await cat.expectConnected();
    await expect(cat.remoteVideos()).toHaveCount(2);
    await cat.expectEveryConnectionDecodes(2);
  } finally {
    for (const p of people) await p.close();
    await balancer.stop();
    await one.kill();
    await two.kill();
    await redis.stop();
  }
});
