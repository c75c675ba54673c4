// Shared pieces of the benchmark scripts: a server process, a browser, pages that join a room.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { chromium } from '@playwright/test';

const here = path.dirname(new URL(import.meta.url).pathname);
export const bin = process.env.CONFAB_BIN ?? path.resolve(here, '../../target/release/confab');
export const siteRoot = process.env.CONFAB_SITE_ROOT ?? path.resolve(here, '../../target/site');

/** A TCP port on loopback that nothing listens on (free when asked). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
 * A server on `port` (more flags in `args`); `start()` waits until it answers, `kill()` ends it
 * with SIGKILL; `pid` is its process id once started.
 */
export function server(port, args = []) {
  let child;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    get pid() { return child?.pid; },
    async start() {
      // A mesh unless asked for the SFU: the figures are the mesh's (the SFU's are loadgen's).
      const mesh = args.includes('--sfu-from') ? [] : ['--sfu-from', '0'];
      child = spawn(bin, ['--addr', `127.0.0.1:${port}`, '--stun', '', ...mesh, ...args], {
        env: { ...process.env, LEPTOS_SITE_ROOT: siteRoot, CONFAB_LOG: process.env.BENCH_CONFAB_LOG ?? 'warn' },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      const exited = new Promise((r) => child.once('exit', (code) => r(code)));
      for (let i = 0; i < 400; i++) {
        try {
          if ((await fetch(`${url}/healthz`)).ok) return;
        } catch {}
        const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r(undefined), 25))]);
        if (code !== undefined) throw new Error(`server exited (${code}) before it answered`);
      }
      throw new Error('server did not start');
    },
    async kill() {
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * Records the page's peer connections, the moment a button labelled one of `labels` ("Join now",
 * the start page's "Join room") is pressed, and what the app does not mark itself on the
 * performance timeline: the click (`confab:click`) and each connection's ICE reaching
 * `connected` (`confab:ice-connected`). The
 * app marks its own steps (`confab:start`, `media`, `join-sent`, `welcome`, `offer-received`,
 * `answer-sent`, `connected`; app/src/call/).
 */
export function instrument(labels = ['Join now', 'Join room']) {
  window.__pcs = [];
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(config) {
      super(config);
      window.__pcs.push(this);
      this.addEventListener('iceconnectionstatechange', () => {
        if (this.iceConnectionState === 'connected') performance.mark('confab:ice-connected');
      });
      this.addEventListener('connectionstatechange', () => {
        if (this.connectionState === 'connected') window.__connectedAt ??= performance.now();
      });
    }
  };
  document.addEventListener('click', (e) => {
    const button = e.target instanceof Element ? e.target.closest('button') : null;
    const label = button?.textContent?.trim();
    if (labels.includes(label)) {
      window.__joinedAt = performance.now();
      performance.mark('confab:click');
      // The start page's form leads on with a page load: the room page takes the click from here.
      sessionStorage.setItem('bench:click', String(performance.timeOrigin + window.__joinedAt));
    }
  }, true);
  const carried = sessionStorage.getItem('bench:click');
  if (carried !== null && document.location.pathname !== '/') {
    sessionStorage.removeItem('bench:click');
    // Before this page began: a negative time on its timeline.
    window.__joinedAt = Number(carried) - performance.timeOrigin;
  }
}

/**
 * The call-setup steps on the page's timeline, in ms after the click: the first mark of each
 * step after it (a step that did not happen is left out).
 */
export async function setupMarks(page) {
  return page.evaluate(() => {
    // A click on the page before (the start page's form) is carried over as a negative time.
    const click = window.__joinedAt < 0 ? window.__joinedAt : performance.getEntriesByName('confab:click').at(-1)?.startTime;
    if (click === undefined) return {};
    const steps = {};
    if (click < 0) steps['page-load'] = -click;
    for (const m of performance.getEntriesByType('mark')) {
      if (!m.name.startsWith('confab:') || m.startTime < click) continue;
      const step = m.name.slice('confab:'.length);
      steps[step] ??= m.startTime - click;
    }
    return steps;
  });
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--use-fake-device-for-media-stream',
      '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
    ],
  });
}

/**
 * Opens a page of its own context on `room`: the pre-join screen, name filled in and the camera
 * preview showing, ready to press "Join now".
 */
export async function openRoom(browser, baseUrl, room, name) {
  const context = await browser.newContext({ permissions: ['camera', 'microphone'], viewport: { width: 640, height: 480 } });
  await context.addInitScript(instrument);
  const page = await context.newPage();
  await page.goto(`${baseUrl}/room/${room}`);
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
  await page.getByLabel('Your name').fill(name);
  await page.waitForFunction(() => (document.querySelector('video[aria-label="Camera preview"]')?.videoWidth ?? 0) > 0);
  return page;
}

/** Opens a page of its own context on the start page, room and name filled in, ready to press "Join room". */
export async function openHome(browser, baseUrl, room, name) {
  const context = await browser.newContext({ permissions: ['camera', 'microphone'], viewport: { width: 640, height: 480 } });
  await context.addInitScript(instrument);
  const page = await context.newPage();
  await page.goto(`${baseUrl}/`);
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
  await page.getByLabel('Room name').fill(room);
  await page.getByLabel('Your name').fill(name);
  return page;
}

/** Waits in the page until it has `n` connected connections, each with a decoded frame. */
export async function waitAllDecoding(page, n, timeoutMs = 30_000) {
  return page.evaluate(async ({ n, timeoutMs }) => {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const pcs = window.__pcs.filter((pc) => pc.connectionState === 'connected');
      if (pcs.length === n) {
        let decoding = 0;
        for (const pc of pcs) {
          let frames = 0;
          (await pc.getStats()).forEach((r) => {
            if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded ?? 0;
          });
          if (frames > 0) decoding += 1;
        }
        if (decoding === n) return performance.now();
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`not all ${n} connections decoding after ${timeoutMs} ms`);
  }, { n, timeoutMs });
}

/**
 * Waits until the page decodes `n` remote videos in all, over however many connections (one
 * to the SFU carries everyone); returns that moment on the page's clock.
 */
export async function waitVideosDecoding(page, n, timeoutMs = 30_000) {
  return page.evaluate(async ({ n, timeoutMs }) => {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      let decoding = 0;
      for (const pc of window.__pcs.filter((pc) => pc.connectionState === 'connected')) {
        (await pc.getStats()).forEach((r) => {
          if (r.type === 'inbound-rtp' && r.kind === 'video' && (r.framesDecoded ?? 0) > 0) decoding += 1;
        });
      }
      if (decoding >= n) return performance.now();
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`not ${n} videos decoding after ${timeoutMs} ms`);
  }, { n, timeoutMs });
}

/** The `q` quantile (0–1) of `xs`, nearest rank: `quantile(xs, 0.9)` is the p90. */
export const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
};

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** CPU seconds (user + system) used so far by every Chromium process on the machine. */
export function chromiumCpuSeconds() {
  const ticks = 100; // USER_HZ on Linux
  let total = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!fs.readFileSync(`/proc/${entry}/comm`, 'utf8').startsWith('chrom')) continue;
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(fields[11]) + Number(fields[12])) / ticks;
    } catch {
      // The process ended meanwhile.
    }
  }
  return total;
}
