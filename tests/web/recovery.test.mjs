// A lost identity, vouched for from the web app: four real nodes
// (separate processes on loopback). Maya, Sam and Ana are a circle; Ana's
// new laptop, on a key of its own, makes a request in its browser; Maya
// pastes it in hers, sees who it is for and the rule, and vouches; Sam
// vouches from the request his home shows him without a reload; Ana's
// old device, which turns out not to be lost after all, sees the request
// on its home and refuses it, and every page says so. Each page passes an
// accessibility check and fits a phone's width.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  tempHome, up, stop, browser, closeBrowser, openApp, freshLink, run, assertNoSeriousA11y, shows, form, ok, ticketOf, mark, stillSamePage,
} from './harness.mjs';

const T = { timeout: 30_000 };
let chromium;
let maya;
let sam;
let ana;
let laptop;

/** Asserts the page is no wider than a 360 px screen. */
async function fitsAPhone(page, label) {
  await page.setViewportSize({ width: 360, height: 740 });
  const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(over <= 0, `${label} is ${over}px wider than a 360 px screen`);
  await page.setViewportSize({ width: 1280, height: 800 });
}

async function checked(page, label) {
  await assertNoSeriousA11y(page, label);
  await fitsAPhone(page, label);
}

before(async () => {
  const [mh, sh, ah, lh] = [await tempHome(), await tempHome(), await tempHome(), await tempHome()];
  ok(mh, ['circle', 'create', 'Tuesday Supper', '--as', 'Maya']);
  maya = await up(mh);
  sam = await up(sh);
  ana = await up(ah);
  laptop = await up(lh);
  const ticket = ticketOf(ok(maya.home, ['invite', '--uses', '2']));
  ok(sam.home, ['join', ticket, '--as', 'Sam'], { timeout: 90_000 });
  ok(ana.home, ['join', ticket, '--as', 'Ana'], { timeout: 90_000 });
  chromium = await browser();
});

after(async () => {
  if (chromium) await closeBrowser(chromium);
  for (const n of [maya, sam, ana, laptop]) if (n) await stop(n);
});

test('a vouch from the web app, and a refusal from the device that was not lost', async () => {
  // Ana's new laptop: from the first page to a request.
  const { page: newPage } = await openApp(chromium, freshLink(laptop));
  await newPage.waitForURL(/\/welcome$/, T);
  await newPage.getByRole('link', { name: 'Ask your circle to recognise you on this one' }).click();
  await shows(newPage, 'Lost your devices?');
  await checked(newPage, 'asking to be recognised');
  const ask = form(newPage, 'Ask your circle to recognise you');
  const ticket = ticketOf(ok(maya.home, ['invite']));
  await ask.getByLabel('Ticket').fill(ticket);
  await ask.getByLabel('Your name in the circle').fill('Ana');
  await ask.getByRole('button', { name: 'Make my request' }).click();
  await shows(newPage, 'Your request is ready.');
  const request = await newPage.getByLabel('Request', { exact: true }).inputValue(T);
  assert.match(request, /^roundtablerecover/);
  await checked(newPage, 'a request to send');

  // Maya pastes it: who it is for, and the rule, before she vouches.
  const { page: mayaPage } = await openApp(chromium, freshLink(maya));
  await mayaPage.waitForURL(/\/c\/[0-9a-f]+$/, T);
  const home = mayaPage.url();
  await mayaPage.goto(`${home}/people`, T);
  const paste = form(mayaPage, 'Vouch for someone on a new device');
  await paste.getByLabel('Request').fill(request);
  await paste.getByRole('button', { name: 'Look at the request' }).click();
  await shows(mayaPage, "A request to become Ana's device");
  await shows(mayaPage, 'Vouch only for someone you have checked with yourself');
  await checked(mayaPage, 'looking at a request');
  const vouch = form(mayaPage, "A request to become Ana's device");
  const chosen = await vouch.getByLabel('Who they are in the circle').evaluate((s) => s.selectedOptions[0].text);
  assert.equal(chosen, 'Ana', 'the name in the request is chosen');
  await vouch.getByLabel('How you checked it is them').fill('she rang me');
  await vouch.getByRole('button', { name: 'I checked with them myself: vouch' }).click();
  await shows(mayaPage, /You vouched\. Now: a request to become Ana's device: she rang me: vouched for by Maya; one more needed/, 'the vouch');
  await checked(mayaPage, 'people with a request');

  // Sam's home tells him, without a reload; he vouches from there.
  const { page: samPage } = await openApp(chromium, freshLink(sam));
  await samPage.waitForURL(/\/c\/[0-9a-f]+$/, T);
  await shows(samPage, /A request to become Ana's device/, 'the request on Sam\'s home');
  await samPage.getByRole('link', { name: 'See the request' }).click();
  await samPage.getByRole('link', { name: 'Vouch that this is Ana…' }).click();
  await shows(samPage, 'Vouch only for someone you have checked with yourself');
  await checked(samPage, 'vouching');
  await samPage.getByRole('button', { name: 'I agree Ana is recognised on a new device' }).click();
  await shows(samPage, 'Your consent is counted.');

  // Ana's own device was never lost: her home says what is asked, and
  // until when she can refuse.
  const { page: anaPage } = await openApp(chromium, freshLink(ana));
  await anaPage.waitForURL(/\/c\/[0-9a-f]+$/, T);
  await shows(anaPage, /Ana's own devices can refuse it until/, 'the wait on Ana\'s home');
  await anaPage.getByRole('link', { name: 'See the request' }).click();
  await mark(mayaPage);
  await anaPage.getByRole('link', { name: 'This is not me: refuse…' }).click();
  await shows(anaPage, 'A request to become your device');
  await checked(anaPage, 'refusing');
  await anaPage.getByRole('button', { name: 'Refuse: this is not me' }).click();
  await shows(anaPage, 'Refused: that device will not become yours');

  // Maya's page hears of it without a reload.
  await shows(mayaPage, /A device of Ana's refused the request to become theirs/, 'the refusal on Maya\'s page');
  await stillSamePage(mayaPage);
  const list = JSON.parse(ok(sam.home, ['remove', 'list', '--json']));
  const recovery = list.proposals.find((p) => p.kind === 'recover' && p.state !== 'void');
  assert.equal(recovery.state, 'refused');
});
