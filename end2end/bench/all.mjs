// `make bench`: every figure of the performance targets, printed as one table (metric |
// measured | target). Runs, one after another on this machine:
//   1. relay, one node: `confab-loadgen relay`, 1,000 rooms × 2 peers for 10 s, in a closed
//      loop (throughput), then open loop at 20,000 msgs/s (`--rate`: one-way relay latency under
//      load, not the closed loop's own queue);
//   2. idle, one node: `confab-loadgen idle`, 10,000 connections held 60 s (held, RSS each);
//   3. relay, two nodes sharing rooms through Redis (`--redis-url`, a redis-server of its own on
//      a free loopback port), the peers of each room on different nodes;
//   4. the SFU engine: `confab-loadgen sfu`, media bots (str0m over loopback UDP) in one room of
//      25 and in 4 rooms of 6, 10 s each (loss, send→receive latency, streams per core);
//   5. first load of a room page (bench/first-load.mjs);
//   6. call setup, 2 and 4 pages (bench/call-setup.mjs).
// A part whose tool is missing (no confab-loadgen, no redis-server, a server without
// `--redis-url`) is skipped and says so; a part that fails shows its error in the table.
//
// Usage (after `make build` and `cargo build --release -p confab-loadgen`):
//   node bench/all.mjs [--json] [--only relay,relay-rate,idle,cluster,sfu,first-load,call-setup]
// CONFAB_LOADGEN names the load generator (default target/release/confab-loadgen);
// CONFAB_BENCH_IDLE_SECONDS shortens the idle hold.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { bin, freePort, server } from './lib.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const loadgen = process.env.CONFAB_LOADGEN ?? path.join(path.dirname(bin), 'confab-loadgen');
const json = process.argv.includes('--json');
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt > 0 ? new Set(process.argv[onlyAt + 1].split(',')) : null;
if (only?.has('relay')) only.add('relay-rate'); // `relay` stands for both of its rows
if (only?.has('sfu')) { only.add('sfu-25'); only.add('sfu-6x4'); }
const wanted = (part) => !only || only.has(part);
const idleSeconds = process.env.CONFAB_BENCH_IDLE_SECONDS ?? '60';
const say = (...a) => console.error('==>', ...a);

// Limits out of the way of the load (defaults protect a real deployment from one client).
const LOAD_FLAGS = [
  '--rate-burst', '100000', '--rate-per-second', '1000000', '--max-connections-per-ip', '30000',
  '--max-connections', '30000', '--max-peers', '30000', '--max-rooms', '30000',
  '--max-places-per-ip', '30000', '--max-joins-per-ip-per-sec', '1000000', '--log', 'warn',
];

/** Runs a program, stderr shown, and parses the last line of its stdout as JSON. */
function runJson(program, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0) return reject(new Error(`${path.basename(program)} exited with ${code ?? signal}`));
      try { resolve(JSON.parse(last)); } catch { reject(new Error(`${path.basename(program)} printed no JSON: ${last.slice(0, 200)}`)); }
    });
  });
}

/** Starts `n` confab nodes with `args`, runs `body(nodes)`, and kills them whatever happens. */
async function withNodes(n, args, body) {
  const nodes = [];
  try {
    for (let i = 0; i < n; i++) {
      const node = server(await freePort(), args);
      nodes.push(node);
      await node.start();
    }
    return await body(nodes);
  } finally {
    for (const node of nodes) await node.kill();
  }
}

const wsUrl = (node) => `${node.url.replace(/^http/, 'ws')}/ws`;
const results = {};
const skipped = {};

async function part(name, why, body) {
  if (!wanted(name)) return;
  if (why) { skipped[name] = why; say(`${name}: skipped (${why})`); return; }
  say(`${name}…`);
  try {
    results[name] = await body();
  } catch (e) {
    skipped[name] = `failed: ${e.message}`;
    say(`${name} failed: ${e.stack ?? e}`);
  }
}

const haveLoadgen = fs.existsSync(loadgen);
const noLoadgen = haveLoadgen ? null : `no ${path.relative(process.cwd(), loadgen)} (cargo build --release -p confab-loadgen)`;

await part('relay', noLoadgen, () => withNodes(1, LOAD_FLAGS, ([node]) => runJson(loadgen, [
  'relay', '--url', wsUrl(node), '--rooms', '1000', '--peers', '2', '--seconds', '10', '--server-pid', String(node.pid), '--json',
])));

const RELAY_RATE = 20_000;
await part('relay-rate', noLoadgen, () => withNodes(1, LOAD_FLAGS, ([node]) => runJson(loadgen, [
  'relay', '--url', wsUrl(node), '--rooms', '1000', '--peers', '2', '--seconds', '10', '--rate', String(RELAY_RATE),
  '--server-pid', String(node.pid), '--json',
])));

await part('idle', noLoadgen, () => withNodes(1, LOAD_FLAGS, ([node]) => runJson(loadgen, [
  'idle', '--url', wsUrl(node), '--connections', '10000', '--seconds', idleSeconds, '--server-pid', String(node.pid), '--json',
])));

/** Whether a Redis on loopback `port` answers PING. */
function redisAnswers(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
    socket.once('data', (d) => { socket.destroy(); resolve(d.toString().startsWith('+PONG')); });
    socket.once('error', () => resolve(false));
  });
}

const redisServer = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => fs.existsSync(p));
const serverHelp = (() => { try { return execFileSync(bin, ['--help'], { encoding: 'utf8' }); } catch { return ''; } })();
const noCluster = noLoadgen ?? (!redisServer ? 'no redis-server'
  : !serverHelp.includes('--redis-url') ? 'this confab has no --redis-url' : null);
await part('cluster', noCluster, async () => {
  const port = await freePort();
  const redis = spawn(redisServer, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  try {
    for (let i = 0; !(await redisAnswers(port)); i++) {
      if (i > 200 || redis.exitCode !== null) throw new Error('redis-server did not start');
      await new Promise((r) => setTimeout(r, 25));
    }
    return await withNodes(2, [...LOAD_FLAGS, '--redis-url', `redis://127.0.0.1:${port}`], (nodes) => runJson(loadgen, [
      'relay', '--url', nodes.map(wsUrl).join(','), '--rooms', '1000', '--peers', '2', '--seconds', '10',
      '--server-pid', nodes.map((n) => n.pid).join(','), '--json',
    ]));
  } finally {
    redis.kill('SIGKILL');
  }
});

// The SFU engine with media bots (in the load generator's process, over loopback UDP).
await part('sfu-25', noLoadgen, () => runJson(loadgen, ['sfu', '--participants', '25', '--seconds', '10', '--json']));
await part('sfu-6x4', noLoadgen, () => runJson(loadgen, ['sfu', '--rooms', '4', '--participants', '6', '--seconds', '10', '--json']));

await part('first-load', null, () => runJson(process.execPath, [path.join(here, 'first-load.mjs'), '--json']));
await part('call-setup', null, () => runJson(process.execPath, [path.join(here, 'call-setup.mjs'), '--json']));

// The table.
const n0 = (x) => Math.round(x).toLocaleString('en-US');
const ms = (us) => `${(us / 1000).toFixed(2)} ms`;
const kB = (bytes) => `${(bytes / 1000).toFixed(1)} KB`;
const check = (ok, target) => `${target} ${ok ? '✓' : '✗'}`;
const errorsOf = (r) => {
  const e = Object.entries(r.errors ?? {});
  return e.length ? ` (errors: ${e.map(([k, v]) => `${k} ${v}`).join(', ')})` : '';
};
const rows = [];
const row = (metric, measured, target = '—') => rows.push([metric, measured, target]);
const skip = (metric, name, target) => row(metric, skipped[name] ?? 'not run', target);

if (wanted('relay')) {
  const r = results.relay;
  if (r) {
    row('relayed messages/s, one node (1,000 rooms × 2 peers)', `${n0(r.messages_per_s)}${errorsOf(r)}`, check(r.messages_per_s >= 100_000, '≥ 100,000'));
  } else {
    skip('relayed messages/s, one node (1,000 rooms × 2 peers)', 'relay', '≥ 100,000');
  }
}
if (wanted('relay-rate')) {
  const r = results['relay-rate'];
  const label = `relay latency p99, one node (1,000 rooms × 2 peers, ${n0(RELAY_RATE)} msgs/s)`;
  if (r) {
    row(label, `${ms(r.latency.p99_us)} (p50 ${ms(r.latency.p50_us)}, p99.9 ${ms(r.latency.p999_us)}; ${n0(r.messages_per_s)} msgs/s delivered)${errorsOf(r)}`, check(r.latency.p99_us <= 2000, '≤ 2 ms'));
  } else {
    skip(label, 'relay-rate', '≤ 2 ms');
  }
}
if (wanted('idle')) {
  const r = results.idle;
  if (r) {
    const perConn = r.server_rss?.per_connection_kib;
    row('server RSS per idle connection', perConn == null ? 'not read' : `${perConn.toFixed(2)} KiB${errorsOf(r)}`, check(perConn != null && perConn <= 20, '≤ 20 KiB'));
    row(`idle connections held (${idleSeconds} s)`, `${n0(r.open_at_end)} of ${n0(r.connections)}`, check(r.open_at_end >= 10_000, '10,000'));
  } else {
    skip('server RSS per idle connection', 'idle', '≤ 20 KiB');
    skip('idle connections held', 'idle', '10,000');
  }
}
if (wanted('cluster')) {
  const r = results.cluster;
  if (r) {
    row('relayed messages/s, 2 nodes + Redis (peers on different nodes)', `${n0(r.messages_per_s)}${errorsOf(r)}`);
    row('relay latency p99, 2 nodes + Redis', `${ms(r.latency.p99_us)} (p50 ${ms(r.latency.p50_us)}, p99.9 ${ms(r.latency.p999_us)})`);
  } else {
    skip('relayed messages/s, 2 nodes + Redis', 'cluster');
  }
}
for (const [name, label] of [['sfu-25', 'SFU, one room of 25 bots'], ['sfu-6x4', 'SFU, 4 rooms of 6 bots']]) {
  if (!wanted(name)) continue;
  const r = results[name];
  if (!r) {
    skip(`${label}: loss / p99 forwarding`, name, '< 1 % / ≤ 5 ms');
    continue;
  }
  row(`${label}: loss / p99 forwarding (engine: read → last copy sent)`, `${r.loss_percent.toFixed(2)} % / ${ms(r.forwarding_p99_us)} (p50 ${ms(r.forwarding_p50_us)}; ${n0(r.video_streams)} video streams, ${n0(r.video_frames_per_second)} frames/s)`,
    check(r.loss_percent < 1 && r.forwarding_p99_us <= 5000, '< 1 % / ≤ 5 ms'));
  row(`${label}: send→receive between bots, p50 / p99`, `${ms(r.latency_p50_us)} / ${ms(r.latency_p99_us)} (bots at nice 10 on the same two cores)`);
  row(`${label}: video streams per fully used core`, `${n0(r.video_streams_per_core)} (engine ${r.engine_cpu_percent.toFixed(1)} % of a core, process ${r.process_cpu_percent.toFixed(0)} %)`,
    check(r.video_streams_per_core >= 1000, '≥ 1,000'));
}
if (wanted('first-load')) {
  const r = results['first-load'];
  if (r) {
    const wasm = r.assets.find((a) => a.kind === 'wasm');
    row('first load of a room page, gzip -9 (HTML, JS, wasm, CSS, icon)', kB(r.total.gzip9_bytes), check(r.total.gzip9_bytes <= 250_000, '≤ 250 KB'));
    row('first load (until the pre-join screen responds), on the wire as served (brotli 11)', kB(r.total.transferred_bytes), check(r.total.transferred_bytes <= 150_000, '≤ 150 KB'));
    row('  then the call\'s own code, fetched while the pre-join screen is up', kB(r.after_interactive.transferred_bytes));
    row('start page first load, on the wire', `${kB(r.start_page.transferred_bytes)}, interactive ${n0(r.start_page.interactive_ms)} ms`, check(r.start_page.transferred_bytes <= 100_000, '≤ 100 KB'));
    if (wasm) row('  of which wasm: raw / gzip -9 / brotli 11', `${kB(wasm.raw_bytes)} / ${kB(wasm.gzip9_bytes)} / ${kB(wasm.brotli11_bytes)}`);
    row(`time to interactive, loopback (median of ${r.runs})`, `${n0(r.interactive_ms.median)} ms`);
    row(`time to interactive, ${r.slow_link.link}: room page / start page`, `${n0(r.slow_link.room_interactive_ms)} / ${n0(r.slow_link.start_interactive_ms)} ms`);
    row('returning visit: over the wire (assets cached, immutable)', `${kB(r.returning_visit.transferred_bytes)}, interactive ${n0(r.returning_interactive_ms)} ms`);
  } else {
    skip('first load of a room page, gzip -9', 'first-load', '≤ 250 KB');
  }
}
if (wanted('call-setup')) {
  const r = results['call-setup'];
  if (r) {
    const two = r.pages_2.join_to_first_frame_ms;
    const four = r.pages_4.join_to_first_frame_ms;
    row(`join → first remote frame, 2 pages (median / p90 of ${r.runs})`, `${two.median} / ${two.p90} ms`, check(two.median <= 300, 'median ≤ 300 ms'));
    const form = r.pages_2_form.join_to_first_frame_ms;
    row(`from the start page's form → first remote frame, 2 pages (median / p90)`, `${form.median} / ${form.p90} ms`);
    row(`join → decoding all 3 others, 4th of 4 pages (median / p90 of ${r.runs})`, `${four.median} / ${four.p90} ms`);
    if (r.sfu_4) {
      const sfu = r.sfu_4.join_to_first_frame_ms;
      row(`join an SFU room → first remote frame, 4th of 4 pages (median / p90)`, `${sfu.median} / ${sfu.p90} ms = ${(sfu.median / two.median).toFixed(2)}× the 2-page figure (all 3: ${r.sfu_4.join_to_all_ms.median} ms)`,
        check(sfu.median <= 1.5 * two.median, '≤ 1.5× 2 pages'));
    }
    if (r.reference) {
      const ref = r.reference.join_to_first_frame_ms.median;
      const ratio = (x) => x / ref;
      row(`  against ${r.reference.url} (${ref} ms): "Join now"`, `${ratio(two.median).toFixed(2)}×`, check(ratio(two.median) <= 1.0, '≤ 1.0×'));
      row(`  against it: the start page's form`, `${ratio(form.median).toFixed(2)}×`, check(ratio(form.median) <= 1.3, '≤ 1.3×'));
    } else {
      row('  against the seed\'s noom: set CALL_SETUP_REFERENCE=<its URL>', 'not run', '≤ 1.0× / ≤ 1.3×');
    }
    for (const key of ['pages_2', 'pages_2_form']) {
      const steps = Object.entries(r[key].steps_median_ms).map(([k, v]) => `${k} ${v}`).join(', ');
      row(`  steps after the click, ${key === 'pages_2' ? '"Join now"' : 'the form'} (median ms)`, steps);
    }
  } else {
    skip('join → first remote frame, 2 pages', 'call-setup', 'median ≤ 300 ms');
  }
}

if (json) {
  console.log(JSON.stringify({ results, skipped }));
} else {
  const widths = [0, 1, 2].map((i) => Math.max(...[['metric', 'measured', 'target'], ...rows].map((r) => r[i].length)));
  const line = (r) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(['metric', 'measured', 'target']));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}
