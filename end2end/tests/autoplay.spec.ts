import { expect, test } from '@playwright/test';
import { Participant, uniqueRoom } from './fixtures/participant';

/**
 * Makes the page behave like a browser whose autoplay policy refuses sound before a click
 * (Safari, Firefox; Chromium lets a page that is capturing the camera play sound): the first
 * `play()` of an element with sound pauses it and rejects with NotAllowedError.
 */
function refuseFirstAudiblePlay() {
  const native = HTMLMediaElement.prototype.play;
  const refused = new WeakSet<HTMLMediaElement>();
  HTMLMediaElement.prototype.play = function (this: HTMLMediaElement) {
    if (!this.muted && !refused.has(this)) {
      refused.add(this);
      this.pause();
      return Promise.reject(new DOMException('play() failed because the user did not interact', 'NotAllowedError'));
    }
    return native.call(this);
  };
}

test('when the browser refuses sound before a click, Play sound starts it', async ({ browser }) => {
  const room = uniqueRoom('autoplay');
  const ada = await Participant.open(browser, 'Ada');
  await ada.joinFromHome(room);

  const bob = await Participant.open(browser, 'Bob');
  await bob.context.addInitScript(refuseFirstAudiblePlay);
  await bob.joinByLink(room);
  await bob.expectConnected();
  await expect(bob.button('Play sound')).toBeVisible();
  await bob.expectAudio('silent');

  await bob.button('Play sound').click();
  await expect(bob.button('Play sound')).toHaveCount(0);
  await bob.expectAudio('audible');
  await bob.expectFramesGrow();

  await ada.close();
  await bob.close();
});
