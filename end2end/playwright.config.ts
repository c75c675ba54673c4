import { defineConfig } from '@playwright/test';
import * as path from 'node:path';
import { chromiumArgs, chromiumPath } from './tests/fixtures/chromium';
import { tonePath, writeSteadyTone } from './tests/fixtures/tone';

// The server binary and site that `make test` built (release), and a port of the tests' own.
const bin = process.env.CONFAB_BIN ?? path.resolve(__dirname, '../target/release/confab');
const siteRoot = process.env.CONFAB_SITE_ROOT ?? path.resolve(__dirname, '../target/site');
const port = Number(process.env.CONFAB_TEST_PORT ?? 3107);
// The one-to-one server listens on port + 1 (see webServer).
process.env.CONFAB_PAIR_URL = `http://127.0.0.1:${port + 1}`;

// A steady 440 Hz tone as the fake microphone: the default fake mic only beeps twice a second,
// which makes "audio energy keeps growing" slow to observe.
const tone = writeSteadyTone(tonePath);

export default defineConfig({
  testDir: './tests',
  // Two cores: one test at a time, each with two or three pages.
  workers: 1,
  fullyParallel: false,
  retries: 0,
  timeout: 60_000,
  expect: { timeout: 15_000 },
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: chromiumPath,
      args: chromiumArgs(tone),
    },
  },
  webServer: [
    // The mesh as it is with `--sfu-from 0` (six people a room): the SFU's tests start a server
    // of their own (sfu.spec.ts).
    {
      command: `"${bin}" --addr 127.0.0.1:${port} --stun "" --sfu-from 0`,
      url: `http://127.0.0.1:${port}/`,
      reuseExistingServer: false,
      timeout: 30_000,
      stdout: 'pipe',
      stderr: 'pipe',
      env: { LEPTOS_SITE_ROOT: siteRoot, CONFAB_LOG: 'info' },
    },
    // A one-to-one server (`--room-capacity 2`), for the room-full test.
    {
      command: `"${bin}" --addr 127.0.0.1:${port + 1} --stun "" --sfu-from 0 --room-capacity 2`,
      url: `http://127.0.0.1:${port + 1}/`,
      reuseExistingServer: false,
      timeout: 30_000,
      stdout: 'pipe',
      stderr: 'pipe',
      env: { LEPTOS_SITE_ROOT: siteRoot, CONFAB_LOG: 'info' },
    },
  ],
});
