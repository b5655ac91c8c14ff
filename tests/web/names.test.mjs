// Who is who, in the browser: three real nodes (separate processes on
// loopback) and a fourth that pairs as one member's phone. A name someone
// else goes by is refused with the reason, a change of name is told in
// everyone's Recent, a proposal to remove someone shows on every member's
// home (the person concerned included), and a device paired from the web
// app can check in at once, with no restart.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  tempHome, up, stop, browser, closeBrowser, openApp, freshLink, run, assertNoSeriousA11y, shows, form, ok, ticketOf,
} from './harness.mjs';

const T = { timeout: 30_000 };
let chromium;
let maya;
let sam;
let ada;
let phone;

before(async () => {
  const [mh, sh, ah, ph] = [await tempHome(), await tempHome(), await tempHome(), await tempHome()];
  ok(mh, ['circle', 'create', 'Tuesday Supper', '--as', 'Maya']);
  maya = await up(mh);
  sam = await up(sh);
  ada = await up(ah);
  phone = await up(ph);
  const ticket = ticketOf(ok(maya.home, ['invite', '--uses', '2']));
  ok(sam.home, ['join', ticket, '--as', 'Sam'], { timeout: 90_000 });
  ok(ada.home, ['join', ticket, '--as', 'Ada'], { timeout: 90_000 });
  chromium = await browser();
});

after(async () => {
  if (chromium) await closeBrowser(chromium);
  for (const n of [maya, sam, ada, phone]) if (n) await stop(n);
});

test("a name someone else goes by is refused, and a new name is told to everyone", async () => {
  const { page: samPage } = await openApp(chromium, freshLink(sam));
  const { page: mayaPage } = await openApp(chromium, freshLink(maya));
  await samPage.waitForURL(/\/c\/[0-9a-f]+$/, T);
  await mayaPage.waitForURL(/\/c\/[0-9a-f]+$/, T);

  await samPage.getByRole('link', { name: 'People' }).click();
  const about = form(samPage, 'About you');
  await about.getByLabel('Your name').fill('maya');
  await about.getByRole('button', { name: 'Save' }).click();
  await shows(samPage, 'is already the name of Maya');
  await assertNoSeriousA11y(samPage, 'people with a refused name');
  assert.equal(ok(maya.home, ['--json', 'members']).includes('"maya"'), false);

  await form(samPage, 'About you').getByLabel('Your name').fill('Lee');
  await form(samPage, 'About you').getByRole('button', { name: 'Save' }).click();
  await shows(samPage, 'Your profile is updated.');
  // Maya's home says so without a reload, in Recent.
  await shows(mayaPage, 'Sam now goes by Lee');
  await assertNoSeriousA11y(mayaPage, 'home with a rename');
});

test('a proposal to remove someone shows on every home, theirs too', async () => {
  ok(maya.home, ['remove', 'propose', 'Ada', '--reason', 'we talked it over']);
  for (const node of [sam, ada]) {
    const { page } = await openApp(chromium, freshLink(node));
    await page.waitForURL(/\/c\/[0-9a-f]+$/, T);
    await shows(page, 'Waiting for the circle');
    await shows(page, /Maya proposed that Ada leave the circle/, 'the proposal');
    await assertNoSeriousA11y(page, 'home with a proposal');
  }
});

test('a device paired in the browser checks in at once', async () => {
  const { page: mayaPage } = await openApp(chromium, freshLink(maya));
  await mayaPage.waitForURL(/\/c\/[0-9a-f]+$/, T);
  const home = mayaPage.url();
  await mayaPage.goto(home + '/pair');
  await mayaPage.getByRole('button', { name: 'Make a pairing ticket' }).click();
  const ticket = await mayaPage.getByLabel('Ticket', { exact: true }).inputValue(T);

  const { page } = await openApp(chromium, freshLink(phone));
  await page.waitForURL(/\/welcome$/, T);
  const join = form(page, 'Join with a ticket');
  await join.getByLabel('Ticket').fill(ticket);
  await join.getByLabel("This device's name (optional)").fill("Maya's phone");
  await join.getByRole('button', { name: 'Join' }).click();
  await page.waitForURL(/\/c\/[0-9a-f]+$/, { timeout: 60_000 });
  await shows(page, 'This device is paired.');
  // The form is there, and a check-in from it is Maya's.
  const checkin = form(page, 'How are you?');
  await checkin.getByText('okay', { exact: true }).click();
  await checkin.getByLabel('In your words (optional)').fill('from my phone');
  await checkin.getByRole('button', { name: 'Check in' }).click();
  await shows(page, /Maya\s*is doing okay/, "Maya's check-in");
  await mayaPage.goto(home);
  await shows(mayaPage, 'from my phone');
});
