// Join → connected and → first remote frame, measured in the browser over 10 runs (prints
// figures; asserts nothing).
//
// Each run: Ada waits in a fresh room; Bob opens the link and, once his pre-join preview shows,
// presses "Join now". Measured on Bob's page from the click (his camera is already open): when
// his connection to Ada reaches `connected`, and when the first video frame from Ada is decoded.
//
// Usage (after `make build`): make bench
import { launch, median, openRoom, server, waitAllDecoding } from './lib.mjs';

const runs = Number(process.argv[2] ?? 10);
const hub = server(Number(process.env.CONFAB_BENCH_PORT ?? 3120));
await hub.start();
const browser = await launch();

const connected = [];
const firstFrame = [];
for (let run = 1; run <= runs; run++) {
  const room = `bench-${Date.now().toString(36)}-${run}`;
  const ada = await openRoom(browser, hub.url, room, 'Ada');
  await ada.getByRole('button', { name: 'Join now' }).click();
  await ada.getByText('Waiting for someone to join').waitFor();
  const bob = await openRoom(browser, hub.url, room, 'Bob');
  await bob.getByRole('button', { name: 'Join now' }).click();
  const decodedAt = await waitAllDecoding(bob, 1);
  const t = await bob.evaluate((decodedAt) => ({
    connected: window.__connectedAt - window.__joinedAt,
    frame: decodedAt - window.__joinedAt,
  }), decodedAt);
  connected.push(t.connected);
  firstFrame.push(t.frame);
  console.log(`run ${String(run).padStart(2)}: join → connected ${t.connected.toFixed(0).padStart(4)} ms, → first remote frame ${t.frame.toFixed(0).padStart(4)} ms`);
  await ada.context().close();
  await bob.context().close();
}
await browser.close();
await hub.kill();
console.log(`median of ${runs}: join → connected ${median(connected).toFixed(0)} ms, join → first remote frame ${median(firstFrame).toFixed(0)} ms ` +
  `(range ${Math.min(...firstFrame).toFixed(0)}–${Math.max(...firstFrame).toFixed(0)} ms)`);
