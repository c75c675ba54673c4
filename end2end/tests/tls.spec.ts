import { expect, test } from '@playwright/test';
import { pairByLink } from './fixtures/call';
import { TestServer, testPort } from './fixtures/server';

test('served over HTTPS with a self-signed certificate, two pages call over wss://', async ({ browser }) => {
  const server = new TestServer(testPort(22), ['--tls-self-signed'], { https: true });
  try {
    await server.start();
    const sockets: string[] = [];
    // Only this test's browser contexts accept the generated certificate.
    const { ada, bob } = await pairByLink(browser, 'tls', server.url, { ignoreHTTPSErrors: true }, async (p) => {
      p.page.on('websocket', (ws) => sockets.push(ws.url()));
    });
    await bob.expectFramesGrow();
    expect(await ada.page.evaluate(() => location.protocol)).toBe('https:');
    expect(sockets).toHaveLength(2);
    for (const url of sockets) expect(url).toBe(`wss://127.0.0.1:${server.port}/ws`);
    // Over HTTPS the pages also tell the browser to keep to HTTPS.
    const page = await ada.context.request.get(`${server.url}/`);
    expect(page.headers()['strict-transport-security']).toMatch(/^max-age=\d+/);
    for (const p of [ada, bob]) await p.close();
  } finally {
    await server.kill();
  }
});
