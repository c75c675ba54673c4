// Join → first remote frame, measured in the browser, over 10 runs (prints figures; asserts nothing).
//
// Each run: Ada waits in a fresh room; Bob opens the link and presses "Join room". Measured on
// Bob's page from the click: when his connection to Ada reaches `connected`, and when the first
// video frame from Ada is decoded (inbound-rtp framesDecoded > 0, polled every 5 ms).
//
// Usage (after `make build`): make bench   — or: CONFAB_BIN=… CONFAB_SITE_ROOT=… node bench/first-frame.mjs [runs]
import { spawn } from 'node:child_process';
import { chromium } from '@playwright/test';
import * as path from 'node:path';

const here = path.dirname(new URL(import.meta.url).pathname);
const bin = process.env.CONFAB_BIN ?? path.resolve(here, '../../target/release/confab');
const siteRoot = process.env.CONFAB_SITE_ROOT ?? path.resolve(here, '../../target/site');
const port = Number(process.env.CONFAB_BENCH_PORT ?? 3108);
const runs = Number(process.argv[2] ?? 10);
const base = `http://127.0.0.1:${port}`;

const server = spawn(bin, ['--addr', `127.0.0.1:${port}`, '--stun', ''], {
  env: { ...process.env, LEPTOS_SITE_ROOT: siteRoot, CONFAB_LOG: 'warn' },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const stop = () => server.kill('SIGTERM');
process.on('exit', stop);

async function waitForServer() {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(base)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('server did not start');
}

function recordPeerConnections() {
  window.__pcs = [];
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(config) {
      super(config);
      window.__pcs.push(this);
    }
  };
  // The moment "Join room" is pressed.
  document.addEventListener('click', (e) => {
    const button = e.target instanceof Element ? e.target.closest('button') : null;
    if (button?.textContent?.trim() === 'Join room') window.__joinedAt = performance.now();
  }, true);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

await waitForServer();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--use-fake-device-for-media-stream',
    '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
  ],
});

const connected = [];
const firstFrame = [];
for (let run = 1; run <= runs; run++) {
  const room = `bench-${Date.now().toString(36)}-${run}`;
  const contexts = [];
  const open = async (name) => {
    const context = await browser.newContext({ permissions: ['camera', 'microphone'], viewport: { width: 640, height: 480 } });
    contexts.push(context);
    await context.addInitScript(recordPeerConnections);
    const page = await context.newPage();
    await page.goto(`${base}/room/${room}`);
    await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
    await page.getByLabel('Your name').fill(name);
    return page;
  };
  const ada = await open('Ada');
  await ada.getByRole('button', { name: 'Join room' }).click();
  await ada.getByText('Waiting for someone to join').waitFor();
  const bob = await open('Bob');
  await bob.getByRole('button', { name: 'Join room' }).click();
  const times = await bob.evaluate(async () => {
    const deadline = performance.now() + 20_000;
    let connectedAt;
    while (performance.now() < deadline) {
      const pc = window.__pcs[0];
      if (pc) {
        if (connectedAt === undefined && pc.connectionState === 'connected') connectedAt = performance.now();
        let frames = 0;
        (await pc.getStats()).forEach((r) => {
          if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded ?? 0;
        });
        if (frames > 0 && connectedAt !== undefined) {
          return { connected: connectedAt - window.__joinedAt, frame: performance.now() - window.__joinedAt };
        }
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    return { timeout: true };
  });
  if (typeof times?.frame !== "number") throw new Error(`unexpected measurement: ${JSON.stringify(times)}`);
  connected.push(times.connected);
  firstFrame.push(times.frame);
  console.log(`run ${String(run).padStart(2)}: join → connected ${times.connected.toFixed(0).padStart(4)} ms, → first remote frame ${times.frame.toFixed(0).padStart(4)} ms`);
  for (const c of contexts) await c.close();
}
await browser.close();
console.log(`median of ${runs}: join → connected ${median(connected).toFixed(0)} ms, join → first remote frame ${median(firstFrame).toFixed(0)} ms`);
console.log(`range: first remote frame ${Math.min(...firstFrame).toFixed(0)}–${Math.max(...firstFrame).toFixed(0)} ms`);
stop();
