// Diagnosis, not a test: the old capacity scenario (six pages join one by one, each turns its
// camera off once in), with every page's connections sampled every 2 s until all six have five
// connected peers or 3 minutes pass. Prints a timeline of per-page states and the load average.
//
// Usage (after `make build`): node bench/mesh6-trace.mjs [camera-on]
import * as os from 'node:os';
import { launch, openRoom, server } from './lib.mjs';

const cameraOn = process.argv.includes('camera-on');
const hub = server(Number(process.env.CONFAB_BENCH_PORT ?? 3131), ['--log', process.env.CONFAB_TRACE_LOG ?? 'warn']);
await hub.start();
const browser = await launch();
const room = `trace-${Date.now().toString(36)}`;
const t0 = Date.now();
const at = () => ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
const pages = [];
const logs = [];

async function states(page) {
  return page.evaluate(() =>
    window.__pcs.map((pc) => `${pc.connectionState}/${pc.iceConnectionState}/${pc.signalingState}`),
  );
}
const short = (s) => s.split('/').map((x) => x.slice(0, 4)).join('/');

async function sample(label) {
  const rows = [];
  for (const [i, page] of pages.entries()) {
    const st = await states(page);
    const status = await page.getByRole('status').innerText().catch(() => '?');
    const connected = st.filter((s) => s.startsWith('connected/')).length;
    rows.push({ i, connected, st, status });
  }
  const load = os.loadavg()[0].toFixed(2);
  console.log(`${at()} s ${label} load ${load}`);
  for (const r of rows) {
    console.log(`         P${r.i + 1}: ${r.connected}/${pages.length - 1} connected [${r.st.map(short).join(' ')}] "${r.status}"`);
  }
  return rows;
}

for (let i = 0; i < 6; i++) {
  const page = await openRoom(browser, hub.url, room, `P${i + 1}`);
  page.on('console', (m) => { if (m.type() === 'warning' || m.type() === 'error') logs.push(`${at()} P${i + 1} [${m.type()}] ${m.text()}`); });
  await page.getByRole('button', { name: 'Join now' }).click();
  await page.getByRole('status').filter({ hasNotText: /^(Starting|Joining)/ }).waitFor();
  if (!cameraOn) await page.getByRole('button', { name: 'Turn camera off', exact: true }).click();
  pages.push(page);
  await sample(`P${i + 1} joined`);
}
const deadline = Date.now() + 180_000;
let done = false;
while (Date.now() < deadline) {
  const rows = await sample('');
  if (rows.every((r) => r.connected === 5)) { done = true; break; }
  await new Promise((r) => setTimeout(r, 2000));
}
console.log(done ? `all connected ${at()} s after the first join` : 'NOT all connected after 3 minutes');
console.log('page warnings and errors:');
for (const l of logs) console.log(`  ${l}`);
for (const p of pages) await p.context().close();
await browser.close();
await hub.kill();
