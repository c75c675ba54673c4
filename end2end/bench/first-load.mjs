// First-load cost of a room page (prints figures; asserts nothing).
//
// Each run opens `/room/<name>` in a fresh browser context (empty cache) on loopback and records
// every response through the DevTools protocol: bytes on the wire (encoded, with headers) and
// the decoded body. The first load is what the page asked for before it responded; the call's
// own wasm chunk, which it asks for once it does (while the pre-join screen is up), is listed
// apart. Time to interactive is navigation start → `<html data-hydrated>`, which the
// app sets right after hydration attached the event handlers ("Join now" responds from then).
// Then the same context opens another room (a returning visitor): the hashed, immutable assets
// must come from the cache without a request to the server.
//
// For the table, each asset is also compressed here with zlib level 9 (about `gzip -9`) and
// brotli 11 (what the build's precompression writes), whatever the server sent.
//
// Usage (after `make build`): node bench/first-load.mjs [runs] [--json]
import * as zlib from 'node:zlib';
import { freePort, launch, median, server } from './lib.mjs';

const json = process.argv.includes('--json');
const runs = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 5);
const log = json ? () => {} : console.log;

const hub = server(await freePort());
await hub.start();
const browser = await launch();

/** Marks the moment the app says it is hydrated (performance.now(), from navigation start). */
function watchHydration() {
  new MutationObserver((_, observer) => {
    if (document.documentElement.hasAttribute('data-hydrated')) {
      window.__hydratedAt = performance.now();
      observer.disconnect();
    }
  }).observe(document, { attributes: true, subtree: true, attributeFilter: ['data-hydrated'] });
}

/** A slow link for the throttled runs: 5 Mbit/s down, 1 Mbit/s up, 40 ms round trip. */
const SLOW_LINK = { offline: false, latency: 40, downloadThroughput: 5e6 / 8, uploadThroughput: 1e6 / 8 };

/** Loads `url` in `page` and returns its responses and timings (over `link`, if given). */
async function load(page, url, link) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  if (link) await cdp.send('Network.emulateNetworkConditions', link);
  const byId = new Map();
  cdp.on('Network.responseReceived', ({ requestId, type, response }) => {
    byId.set(requestId, {
      url: response.url, type, status: response.status, mime: response.mimeType,
      encoding: response.headers['content-encoding'] ?? response.headers['Content-Encoding'] ?? 'identity',
      cacheControl: response.headers['cache-control'] ?? '',
      fromCache: Boolean(response.fromDiskCache || response.fromMemoryCache),
      decoded: 0, transferred: 0,
    });
  });
  cdp.on('Network.requestServedFromCache', ({ requestId }) => {
    const r = byId.get(requestId);
    if (r) r.fromCache = true;
  });
  cdp.on('Network.dataReceived', ({ requestId, dataLength }) => {
    const r = byId.get(requestId);
    if (r) r.decoded += dataLength;
  });
  const finished = [];
  cdp.on('Network.loadingFinished', ({ requestId, encodedDataLength }) => {
    const r = byId.get(requestId);
    if (r) { r.transferred = encodedDataLength; finished.push(requestId); }
  });
  await page.goto(url);
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached', timeout: 30_000 });
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    return { interactive: window.__hydratedAt, domContentLoaded: nav.domContentLoadedEventEnd, html: nav.responseEnd };
  });
  // Let the last loadingFinished events arrive (and what the page asks for once it is
  // interactive: the call's own wasm chunk).
  await new Promise((r) => setTimeout(r, 500));
  // What the page asked for only once it was interactive: not part of the first load.
  const later = new Set(await page.evaluate((at) => performance.getEntriesByType('resource')
    .filter((e) => e.startTime >= at).map((e) => e.name), timing.interactive));
  await cdp.detach();
  const responses = [...byId.values()].filter((r) => !r.url.startsWith('data:') && !r.url.includes('/ws'))
    .map((r) => ({ ...r, afterInteractive: later.has(r.url) }));
  return { timing, responses };
}

const kind = (r) => {
  const path = new URL(r.url).pathname;
  if (r.type === 'Document') return 'html';
  if (path.endsWith('.wasm')) return 'wasm';
  if (path.endsWith('.js')) return 'js';
  if (path.endsWith('.css')) return 'css';
  return path.split('/').pop() || path;
};

const cold = [];
const warm = [];
let sample;
for (let run = 1; run <= runs; run++) {
  const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
  await context.addInitScript(watchHydration);
  const page = await context.newPage();
  const first = await load(page, `${hub.url}/room/load-${Date.now().toString(36)}-${run}`);
  const again = await load(page, `${hub.url}/room/load-${Date.now().toString(36)}-${run}-again`);
  cold.push(first);
  warm.push(again);
  sample ??= first;
  log(`run ${run}: interactive ${first.timing.interactive.toFixed(0)} ms (DOMContentLoaded ${first.timing.domContentLoaded.toFixed(0)} ms), ` +
    `returning visit ${again.timing.interactive.toFixed(0)} ms`);
  await context.close();
}

// The start page, cold, the same way (its own context: nothing cached).
const startLoads = [];
for (let run = 1; run <= runs; run++) {
  const context = await browser.newContext();
  await context.addInitScript(watchHydration);
  startLoads.push(await load(await context.newPage(), `${hub.url}/`));
  await context.close();
}
// Both pages again over a slow link (cold, fewer runs): where the bytes show.
const slow = { room: [], start: [] };
for (let run = 1; run <= Math.min(runs, 5); run++) {
  for (const [which, path] of [['room', `/room/slow-${Date.now().toString(36)}-${run}`], ['start', '/']]) {
    const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
    await context.addInitScript(watchHydration);
    slow[which].push((await load(await context.newPage(), `${hub.url}${path}`, SLOW_LINK)).timing.interactive);
    await context.close();
  }
}
const onWire = (responses) => responses.filter((r) => !r.fromCache).reduce((n, r) => n + r.transferred, 0);

// Sizes of what the server sends (one cold load), and what gzip -9 and brotli 11 make of each.
const assets = [];
const seen = new Set();
const fetched = sample.responses.filter((r) => !r.fromCache && !seen.has(r.url) && seen.add(r.url));
for (const r of fetched.sort((a, b) => b.decoded - a.decoded)) {
  const body = Buffer.from(await (await fetch(r.url, { headers: { 'accept-encoding': 'identity' } })).arrayBuffer());
  assets.push({
    kind: kind(r),
    path: new URL(r.url).pathname,
    status: r.status,
    content_encoding: r.encoding,
    cache_control: r.cacheControl,
    transferred_bytes: r.transferred,
    decoded_bytes: r.decoded,
    raw_bytes: body.length,
    gzip9_bytes: zlib.gzipSync(body, { level: 9 }).length,
    brotli11_bytes: zlib.brotliCompressSync(body, {
      params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.length },
    }).length,
    after_interactive: r.afterInteractive,
  });
}
// The first load: what the page needs before it responds (the pre-join screen); what it fetches
// once it does (the call's chunk) is counted apart.
const sum = (key) => assets.filter((a) => !a.after_interactive).reduce((n, a) => n + a[key], 0);
const sumLater = (key) => assets.filter((a) => a.after_interactive).reduce((n, a) => n + a[key], 0);
const returning = warm[0].responses;
const result = {
  runs,
  interactive_ms: { median: median(cold.map((c) => c.timing.interactive)), runs: cold.map((c) => Math.round(c.timing.interactive)) },
  dom_content_loaded_ms: median(cold.map((c) => c.timing.domContentLoaded)),
  returning_interactive_ms: median(warm.map((w) => w.timing.interactive)),
  assets,
  total: {
    transferred_bytes: sum('transferred_bytes'),
    decoded_bytes: sum('decoded_bytes'),
    raw_bytes: sum('raw_bytes'),
    gzip9_bytes: sum('gzip9_bytes'),
    brotli11_bytes: sum('brotli11_bytes'),
  },
  after_interactive: {
    transferred_bytes: sumLater('transferred_bytes'),
    brotli11_bytes: sumLater('brotli11_bytes'),
    paths: assets.filter((a) => a.after_interactive).map((a) => a.path),
  },
  start_page: {
    transferred_bytes: onWire(startLoads[0].responses),
    assets: startLoads[0].responses.filter((r) => !r.fromCache)
      .map((r) => ({ path: new URL(r.url).pathname, transferred_bytes: r.transferred })),
    interactive_ms: median(startLoads.map((l) => l.timing.interactive)),
  },
  slow_link: {
    link: '5 Mbit/s down, 1 Mbit/s up, 40 ms round trip',
    room_interactive_ms: median(slow.room),
    start_interactive_ms: median(slow.start),
    runs: slow.room.length,
  },
  returning_visit: {
    requests: returning.length,
    from_cache: returning.filter((r) => r.fromCache).length,
    transferred_bytes: returning.reduce((n, r) => n + (r.fromCache ? 0 : r.transferred), 0),
  },
};

await browser.close();
await hub.kill();

if (json) {
  console.log(JSON.stringify(result));
} else {
  const kb = (n) => (n / 1000).toFixed(1).padStart(8);
  console.log('\nfirst load of a room page (cold cache; KB = 1000 bytes)');
  console.log(`${'asset'.padEnd(46)} ${'sent as'.padEnd(8)} ${'on wire'.padStart(8)} ${'decoded'.padStart(8)} ${'gzip -9'.padStart(8)} ${'brotli'.padStart(8)}  cache-control`);
  const line = (a) => console.log(`${a.path.slice(0, 46).padEnd(46)} ${a.content_encoding.padEnd(8)} ${kb(a.transferred_bytes)} ${kb(a.decoded_bytes)} ${kb(a.gzip9_bytes)} ${kb(a.brotli11_bytes)}  ${a.cache_control}`);
  assets.filter((a) => !a.after_interactive).forEach(line);
  const t = result.total;
  console.log(`${'total, until the page responds'.padEnd(46)} ${''.padEnd(8)} ${kb(t.transferred_bytes)} ${kb(t.decoded_bytes)} ${kb(t.gzip9_bytes)} ${kb(t.brotli11_bytes)}`);
  console.log('then, asked for once the page responds (the call\'s own code, while the pre-join screen is up):');
  assets.filter((a) => a.after_interactive).forEach(line);
  console.log(`time to interactive (loopback, median of ${runs}): ${result.interactive_ms.median.toFixed(0)} ms ` +
    `(runs: ${result.interactive_ms.runs.join(', ')}); DOMContentLoaded ${result.dom_content_loaded_ms.toFixed(0)} ms`);
  const start = result.start_page;
  console.log(`start page (cold): ${kb(start.transferred_bytes).trim()} KB on the wire ` +
    `(${start.assets.map((a) => `${a.path === '/' ? '/' : a.path.split('/').pop().slice(0, 20)} ${kb(a.transferred_bytes).trim()}`).join(', ')}), ` +
    `interactive in ${start.interactive_ms.toFixed(0)} ms`);
  console.log(`over a slow link (${result.slow_link.link}; median of ${result.slow_link.runs}): room page interactive in ` +
    `${result.slow_link.room_interactive_ms.toFixed(0)} ms, start page in ${result.slow_link.start_interactive_ms.toFixed(0)} ms`);
  console.log(`returning visit: ${result.returning_visit.from_cache} of ${result.returning_visit.requests} responses from the cache, ` +
    `${kb(result.returning_visit.transferred_bytes).trim()} KB over the wire, interactive in ${result.returning_interactive_ms.toFixed(0)} ms`);
}
