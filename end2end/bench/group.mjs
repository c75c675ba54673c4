// Group-call figures (prints them; asserts nothing):
//   1. last join → everyone connected and decoding every peer, for 2, 4 and 6 pages (median of 5);
//   2. recovery after the server is killed and restarted: server listening → both pages
//      "Connected" again (median of 3);
//   3. recovery after a connectivity loss (root with nft only): UDP on loopback restored →
//      connection `connected` again, through ICE restart (median of 3);
//   4. CPU used by a 4-page mesh (all Chromium processes), over 10 s.
//
// Usage (after `make build`): make bench
import { execFileSync } from 'node:child_process';
import { chromiumCpuSeconds, launch, median, openRoom, server, waitAllDecoding } from './lib.mjs';

const hub = server(Number(process.env.CONFAB_BENCH_PORT ?? 3121));
await hub.start();
const browser = await launch();
let roomNo = 0;
const fresh = () => `group-${Date.now().toString(36)}-${++roomNo}`;

async function fill(n) {
  const room = fresh();
  const pages = [];
  for (let i = 0; i < n; i++) {
    const page = await openRoom(browser, hub.url, room, `P${i + 1}`);
    await page.getByRole('button', { name: 'Join now' }).click();
    await page.getByRole('status').filter({ hasNotText: /^(Starting|Joining)/ }).waitFor();
    pages.push(page);
  }
  return pages;
}
const closeAll = async (pages) => { for (const p of pages) await p.context().close(); };

console.log('1. last join → all connected and decoding (median of 5)');
for (const n of [2, 4, 6]) {
  const times = [];
  for (let run = 0; run < 5; run++) {
    const pages = await fill(n);
    // The last page's click started it; every page must now see n - 1 decoding peers.
    const last = pages[n - 1];
    const lastClick = await last.evaluate(() => performance.timeOrigin + window.__joinedAt);
    const done = await Promise.all(pages.map(async (p) => {
      const at = await waitAllDecoding(p, n - 1, 60_000);
      return p.evaluate((at) => performance.timeOrigin + at, at);
    }));
    times.push(Math.max(...done) - lastClick);
    await closeAll(pages);
  }
  console.log(`   ${n} pages: ${median(times).toFixed(0)} ms (runs: ${times.map((t) => t.toFixed(0)).join(', ')})`);
}

console.log('2. recovery after a server restart (median of 3)');
{
  const times = [];
  for (let run = 0; run < 3; run++) {
    const pages = await fill(2);
    await Promise.all(pages.map((p) => waitAllDecoding(p, 1)));
    await hub.kill();
    await Promise.all(pages.map((p) => p.getByText(/^Reconnecting to the server/).waitFor()));
    const started = Date.now();
    await hub.start();
    await Promise.all(pages.map((p) => p.getByRole('status').filter({ hasText: /^Connected$/ }).waitFor({ timeout: 30_000 })));
    times.push(Date.now() - started);
    await closeAll(pages);
  }
  console.log(`   server listening → both pages Connected: ${median(times).toFixed(0)} ms (runs: ${times.join(', ')})`);
}

console.log('3. recovery after a connectivity loss (median of 3)');
if (process.getuid?.() === 0) {
  const nft = (...args) => execFileSync('nft', args);
  const unblock = () => { try { execFileSync('nft', ['delete', 'table', 'inet', 'confab_bench'], { stdio: 'ignore' }); } catch {} };
  const times = [];
  try {
    for (let run = 0; run < 3; run++) {
      const pages = await fill(2);
      await Promise.all(pages.map((p) => waitAllDecoding(p, 1)));
      const ufrag = () => pages[0].evaluate(() => /a=ice-ufrag:(\S+)/.exec(window.__pcs[0].currentLocalDescription.sdp)[1]);
      const before = await ufrag();
      unblock();
      nft('add', 'table', 'inet', 'confab_bench');
      nft('add', 'chain', 'inet', 'confab_bench', 'input', '{ type filter hook input priority 0; }');
      nft('add', 'rule', 'inet', 'confab_bench', 'input', 'iifname', 'lo', 'meta', 'l4proto', 'udp', 'drop');
      // Held until the app has restarted ICE (new credentials negotiated).
      while ((await ufrag()) === before) await new Promise((r) => setTimeout(r, 50));
      const restored = Date.now();
      unblock();
      await Promise.all(pages.map((p) => p.waitForFunction(() => window.__pcs[0].connectionState === 'connected', null, { polling: 10, timeout: 30_000 })));
      times.push(Date.now() - restored);
      await closeAll(pages);
    }
  } finally {
    unblock();
  }
  console.log(`   UDP restored → connected: ${median(times).toFixed(0)} ms (runs: ${times.join(', ')})`);
} else {
  console.log('   skipped: needs root and nft');
}

console.log('4. CPU of a 4-page mesh');
{
  const pages = await fill(4);
  await Promise.all(pages.map((p) => waitAllDecoding(p, 3, 60_000)));
  const before = chromiumCpuSeconds();
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, 10_000));
  const used = chromiumCpuSeconds() - before;
  const wall = (Date.now() - t0) / 1000;
  console.log(`   Chromium, 4 pages, 12 streams sent at half resolution: ${(used / wall).toFixed(2)} cores of 2`);
  await closeAll(pages);
}

await browser.close();
await hub.kill();
