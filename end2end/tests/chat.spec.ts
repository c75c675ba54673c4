import { expect, test } from '@playwright/test';
import { pairByLink } from './fixtures/call';
import { Participant } from './fixtures/participant';
import { TestServer, testPort } from './fixtures/server';

function chatButton(p: Participant) {
  return p.page.getByRole('button', { name: /^Chat/ });
}

function messages(p: Participant) {
  return p.page.getByRole('complementary', { name: 'Chat' }).getByRole('listitem');
}

async function say(p: Participant, text: string) {
  if ((await chatButton(p).getAttribute('aria-expanded')) !== 'true') await chatButton(p).click();
  await p.page.getByLabel('Message').fill(text);
  await p.button('Send').click();
}

test('chat reaches everyone as text, counts unread, greets late joiners and survives a server restart', async ({ browser }) => {
  test.setTimeout(120_000);
  const server = new TestServer(testPort(12));
  await server.start();
  try {
    const { room, ada, bob } = await pairByLink(browser, 'chat', server.url);
    const attack = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script> hi';
    await say(ada, attack);
    await expect(messages(ada)).toHaveCount(1);
    await expect(messages(ada).first()).toContainText('Ada');
    // Bob has the panel closed: a badge counts the message.
    await expect(chatButton(bob)).toHaveAccessibleName('Chat 1 unread');
    await chatButton(bob).click();
    await expect(chatButton(bob)).toHaveAccessibleName('Chat');
    await expect(messages(bob).first().locator('.text')).toHaveText(attack);
    expect(await bob.page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    await expect(messages(bob).first().locator('time')).toHaveText(/^\d\d:\d\d$/);

    // A message at the length limit is explained, not silently cut.
    await bob.page.getByLabel('Message').fill('x'.repeat(1000));
    await expect(bob.page.getByRole('complementary', { name: 'Chat' }).getByRole('alert')).toHaveText(
      'A message can be at most 1000 characters.',
    );
    await say(bob, 'hello Ada');
    await expect(messages(ada)).toHaveCount(2);

    // Cat joins late and gets the history.
    const cat = await Participant.open(browser, 'Cat', undefined, server.url);
    await cat.joinByLink(room);
    await cat.expectConnected();
    await expect(chatButton(cat)).toHaveAccessibleName('Chat 2 unread');
    await chatButton(cat).click();
    await expect(messages(cat)).toHaveText([/Ada.*hi$/s, /Bob.*hello Ada$/s]);

    // The server restarts (history on it is gone); pages keep theirs, and chat goes on.
    await server.kill();
    await expect(ada.status()).toHaveText(/^Reconnecting to the server/);
    await server.start();
    for (const p of [ada, bob, cat]) await expect(p.status()).toHaveText('Connected');
    await say(cat, 'still here');
    for (const p of [ada, bob, cat]) await expect(messages(p)).toHaveCount(3);
    await expect(messages(bob).last()).toContainText('still here');
    for (const p of [ada, bob, cat]) await p.close();
  } finally {
    await server.kill();
  }
});
