// Call setup, measured in the browser (prints figures; asserts nothing): median and p90 over
// `runs` runs (default 10) of
//   - 2 pages: Ada waits in a fresh room; Bob opens the link and, once his pre-join preview
//     shows, presses "Join now". From Bob's click (his camera already open) until his connection
//     to Ada is `connected`, and until he has decoded Ada's first video frame.
//     The same from the start page's form ("Join room": the camera starts on the click), and,
//     for both, the breakdown of the newcomer's path on its performance timeline (median ms
//     after the click of each step: start, media, join-sent, welcome, offer-received,
//     answer-sent, ice-connected, connected, first-frame).
//   - 4 pages: three people are in a call, every one decoding the others; the fourth presses
//     "Join now". From that click until the newcomer decodes video from all three (its three
//     connections made at once, each needing an offer from someone already in the room).
//
//   - 4 pages through the SFU (a server with `--sfu-from 3`): three people in a call through it,
//     the fourth presses "Join now". From that click until the newcomer decodes its first
//     remote video, and all three (one connection, to the server).
//   - optionally, the same two-page call in another app (CALL_SETUP_REFERENCE=<url>, see
//     `referenceRun`), taking turns with confab's runs, and the ratios to it.
//
// Usage (after `make build`): [CALL_SETUP_REFERENCE=http://127.0.0.1:3000/] node bench/call-setup.mjs [runs] [--json]
import { freePort, instrument, launch, median, openHome, openRoom, quantile, server, setupMarks, waitAllDecoding, waitVideosDecoding } from './lib.mjs';

const json = process.argv.includes('--json');
const runs = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 10);
const log = json ? () => {} : console.log;

const hub = server(await freePort());
await hub.start();
const sfuHub = server(await freePort(), ['--sfu-from', '3']);
await sfuHub.start();
const browser = await launch();
let roomNo = 0;
const fresh = () => `setup-${Date.now().toString(36)}-${++roomNo}`;

/** Opens `n` pages in `room` and joins them, each waiting for the others' video. */
async function callOf(room, n, url = hub.url) {
  const pages = [];
  for (let i = 0; i < n; i++) {
    const page = await openRoom(browser, url, room, `P${i + 1}`);
    await page.getByRole('button', { name: 'Join now' }).click();
    if (i === 0) await page.getByText('Waiting for someone to join').waitFor();
    else await Promise.all([...pages, page].map((p) => waitVideosDecoding(p, i)));
    pages.push(page);
  }
  // Through the SFU: the switch is over (one connection each) before anyone else comes.
  if (url !== hub.url) {
    await Promise.all(pages.map((p) => p.waitForFunction(() => window.__pcs.filter((pc) => pc.connectionState !== 'closed').length === 1)));
  }
  return pages;
}

/** A newcomer joins an SFU room of `others`: its click → first remote video, → all of them. */
async function joinSfu(room, others) {
  const page = await openRoom(browser, sfuHub.url, room, 'Newcomer');
  await page.getByRole('button', { name: 'Join now' }).click();
  const firstAt = await waitVideosDecoding(page, 1, 60_000);
  const allAt = await waitVideosDecoding(page, others, 60_000);
  const t = await page.evaluate(([firstAt, allAt]) => ({
    connected: window.__connectedAt - window.__joinedAt,
    frame: firstAt - window.__joinedAt,
    all: allAt - window.__joinedAt,
  }), [firstAt, allAt]);
  const steps = { ...(await setupMarks(page)), 'first-frame': t.frame };
  return { page, ...t, steps };
}

/**
 * The newcomer's join → connected (first connection) and → decoding all `others`, with the
 * steps between; `fromForm` joins from the start page's form instead of the pre-join screen.
 */
async function join(room, others, fromForm = false) {
  const page = fromForm ? await openHome(browser, hub.url, room, 'Newcomer') : await openRoom(browser, hub.url, room, 'Newcomer');
  await page.getByRole('button', { name: fromForm ? 'Join room' : 'Join now' }).click();
  const decodedAt = await waitAllDecoding(page, others, 60_000);
  const t = await page.evaluate((decodedAt) => ({
    connected: window.__connectedAt - window.__joinedAt,
    frame: decodedAt - window.__joinedAt,
  }), decodedAt);
  const steps = { ...(await setupMarks(page)), 'first-frame': t.frame };
  return { page, ...t, steps };
}

/** The median of each step over runs, in the order of the path. */
const stepOrder = ['page-load', 'start', 'media', 'join-sent', 'welcome', 'offer-received', 'answer-sent', 'sfu-offer-sent', 'ice-connected', 'sfu-connected', 'connected', 'first-frame'];
function medianSteps(all) {
  const out = {};
  for (const step of stepOrder) {
    const xs = all.map((s) => s[step]).filter((x) => x !== undefined);
    if (xs.length) out[step] = Math.round(median(xs));
  }
  return out;
}

const closeAll = async (pages) => { for (const p of pages) await p.context().close(); };
const summary = (xs) => ({ median: Math.round(median(xs)), p90: Math.round(quantile(xs, 0.9)), runs: xs.map(Math.round) });

/**
 * The same two-page call in another app to compare with (`CALL_SETUP_REFERENCE`, e.g. the seed's
 * own noom on http://127.0.0.1:3000): a page with a "room name" field and an "Enter room"
 * button that starts the camera on the click. From the second person's click until it has
 * decoded the first person's video, measured as for confab.
 */
const reference = process.env.CALL_SETUP_REFERENCE;
async function referenceRun(room) {
  const open = async () => {
    const context = await browser.newContext({ permissions: ['camera', 'microphone'], viewport: { width: 640, height: 480 } });
    await context.addInitScript(instrument, ['Enter room']);
    const page = await context.newPage();
    await page.goto(reference);
    await page.getByPlaceholder('room name').fill(room);
    return page;
  };
  const first = await open();
  await first.getByRole('button', { name: 'Enter room' }).click();
  await first.waitForFunction(() => window.__pcs.length === 1 && (document.querySelector('video')?.videoWidth ?? 0) > 0);
  // Its join goes out after the connection is made: wait until the server has it.
  await first.waitForTimeout(300);
  const second = await open();
  await second.getByRole('button', { name: 'Enter room' }).click();
  const decodedAt = await waitAllDecoding(second, 1, 60_000);
  const t = await second.evaluate((decodedAt) => ({
    connected: window.__connectedAt - window.__joinedAt,
    frame: decodedAt - window.__joinedAt,
  }), decodedAt);
  await closeAll([first, second]);
  return t;
}

const result = { runs };
const scenarios = [[2, false], [2, true], ...(reference ? [['reference']] : []), [4, false], ['sfu']];
const collected = new Map(scenarios.map(([n, fromForm]) => [`${n}-${fromForm}`, { connected: [], frames: [], steps: [], all: [] }]));
// The two-page scenarios (and the reference) take turns run by run, so that a busy moment on
// the machine falls on all of them alike; the four-page ones (mesh and SFU) take turns after.
const rounds = [scenarios.filter(([n]) => n !== 4 && n !== 'sfu'), scenarios.filter(([n]) => n === 4 || n === 'sfu')];
for (const round of rounds) {
  for (let run = 1; run <= runs; run++) {
    for (const [n, fromForm] of round) {
      const into = collected.get(`${n}-${fromForm}`);
      if (n === 'reference') {
        const { connected: c, frame } = await referenceRun(fresh());
        into.connected.push(c);
        into.frames.push(frame);
        log(`reference, run ${String(run).padStart(2)}: join → connected ${c.toFixed(0).padStart(4)} ms, → decoding the other ${frame.toFixed(0).padStart(4)} ms`);
        continue;
      }
      if (n === 'sfu') {
        const room = fresh();
        const present = await callOf(room, 3, sfuHub.url);
        const { page, connected: c, frame, all, steps: s } = await joinSfu(room, 3);
        into.connected.push(c);
        into.frames.push(frame);
        into.all.push(all);
        into.steps.push(s);
        log(`SFU, 4th of 4, run ${String(run).padStart(2)}: join → connected ${c.toFixed(0).padStart(4)} ms, ` +
          `→ first remote video ${frame.toFixed(0).padStart(4)} ms, → all 3 ${all.toFixed(0).padStart(4)} ms`);
        await closeAll([...present, page]);
        continue;
      }
      const room = fresh();
      const present = await callOf(room, n - 1);
      const { page, connected: c, frame, steps: s } = await join(room, n - 1, fromForm);
      into.connected.push(c);
      into.frames.push(frame);
      into.steps.push(s);
      log(`${n} pages${fromForm ? ' (form)' : ''}, run ${String(run).padStart(2)}: join → connected ${c.toFixed(0).padStart(4)} ms, ` +
        `→ decoding ${n - 1 === 1 ? 'the other' : `all ${n - 1} others`} ${frame.toFixed(0).padStart(4)} ms`);
      await closeAll([...present, page]);
    }
  }
}
for (const [n, fromForm] of scenarios) {
  const { connected, frames, steps, all } = collected.get(`${n}-${fromForm}`);
  if (n === 'sfu') {
    result.sfu_4 = {
      join_to_connected_ms: summary(connected),
      join_to_first_frame_ms: summary(frames),
      join_to_all_ms: summary(all),
      steps_median_ms: medianSteps(steps),
    };
    continue;
  }
  result[n === 'reference' ? 'reference' : `pages_${n}${fromForm ? '_form' : ''}`] = {
    join_to_connected_ms: summary(connected),
    join_to_first_frame_ms: summary(frames),
    ...(n === 'reference' ? { url: reference } : { steps_median_ms: medianSteps(steps) }),
  };
}

await browser.close();
await hub.kill();
await sfuHub.kill();

if (json) {
  console.log(JSON.stringify(result));
} else {
  console.log(`\ncall setup, over ${runs} runs (the newcomer's "Join now" click →)`);
  for (const key of ['pages_2', 'pages_2_form', 'pages_4', 'sfu_4', ...(reference ? ['reference'] : [])]) {
    const r = result[key];
    console.log(`  ${key}: connected median ${r.join_to_connected_ms.median} ms, p90 ${r.join_to_connected_ms.p90} ms; ` +
      `decoding median ${r.join_to_first_frame_ms.median} ms, p90 ${r.join_to_first_frame_ms.p90} ms`);
    if (r.steps_median_ms) console.log(`    steps (median ms after the click): ${Object.entries(r.steps_median_ms).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  if (reference) {
    const ref = result.reference.join_to_first_frame_ms.median;
    console.log(`  to the first frame against the reference: "Join now" ${(result.pages_2.join_to_first_frame_ms.median / ref).toFixed(2)}×, ` +
      `the form ${(result.pages_2_form.join_to_first_frame_ms.median / ref).toFixed(2)}×`);
  }
}
