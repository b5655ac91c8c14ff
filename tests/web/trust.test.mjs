// Pages people can trust, in a real browser against real nodes: any text
// fits a phone, a refresh or Back never sends a form twice, every form's
// address shows a page, lasting actions are asked first (take back,
// revoke an invite or a device, consent to a removal), invites carry a
// label and show their ticket again, limits are the node's, words typed
// while the node cannot be reached (or while it restarts) are kept and
// offered again, and the person a circle removed is told so.
//
// Maya starts a circle in her browser; Sam and Lee (whose name is long)
// join with the CLI, and Maya pairs a second device the same way.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  tempHome, up, stop, browser, closeBrowser, openApp, freshLink,
  assertNoSeriousA11y, run, runJson, waitFor,
} from './harness.mjs';

const T = { timeout: 30_000 };
const WORD = 'w'.repeat(2000);
const LINK = `https://example.org/${'a'.repeat(230)}`;
const LONG_NAME = `Lee${'e'.repeat(97)}`;

let chromium;
let maya;
let sam;
let lee;
let phone;
let page;
let circle;
/** POSTs the page sent, by path. */
const posts = [];

function form(p, name) {
  return p.getByRole('form', { name });
}

async function shows(p, text, what = text) {
  await p.getByText(text).first().waitFor({ state: 'visible', ...T }).catch((e) => {
    throw new Error(`timed out waiting for "${what}" on ${p.url()}: ${e.message}`);
  });
}

function at(path) {
  return new URL(path, maya.origin).href;
}

/** Joins `node` to Maya's circle with a fresh ticket, as `name`. */
function joinAs(node, name) {
  const made = runJson(maya.home, ['--json', 'invite']);
  const ticket = made.ticket ?? made.line ?? made.invite?.ticket;
  assert.ok(ticket, `no ticket in ${JSON.stringify(made)}`);
  const r = run(node.home, ['join', ticket, '--as', name, '--device-name', `${name.slice(0, 3)}'s laptop`]);
  assert.equal(r.code, 0, `join as ${name}: ${r.stderr}`);
}

before(async () => {
  maya = await up(await tempHome());
  sam = await up(await tempHome());
  lee = await up(await tempHome());
  chromium = await browser();
  ({ page } = await openApp(chromium, maya.url));
  page.on('request', (r) => {
    if (r.method() === 'POST') posts.push(new URL(r.url()).pathname);
  });
  await page.waitForURL(/\/welcome$/, T);
  const start = form(page, 'Start a circle');
  await start.getByLabel('Circle name').fill('Tuesday Supper');
  await start.getByLabel('Your name').fill('Maya');
  await start.getByRole('button', { name: 'Start the circle' }).click();
  await page.waitForURL(/\/c\/[0-9a-f]+$/, T);
  circle = new URL(page.url()).pathname.split('/')[2];
});

after(async () => {
  if (chromium) await closeBrowser(chromium);
  for (const n of [maya, sam, lee]) if (n) await stop(n);
});

test('a brand-new circle of one is not called offline', async () => {
  await page.goto(at(`/c/${circle}`), T);
  const net = await page.locator('#net').textContent();
  assert.doesNotMatch(net, /Offline/);
  assert.match(net, /Only you so far/);
});

test('refresh after every form sends nothing twice, and Back shows no filled form', async () => {
  const once = async (what, submit) => {
    posts.length = 0;
    await submit();
    await page.waitForLoadState('load');
    assert.equal(posts.length, 1, `${what}: ${posts.join(', ')}`);
    await page.reload({ waitUntil: 'load', timeout: 20_000 });
    assert.equal(posts.length, 1, `${what}: refreshing sent the form again (${posts.join(', ')})`);
  };
  await page.goto(at(`/c/${circle}`), T);
  const checkin = form(page, 'How are you?');
  await checkin.getByLabel('okay').check();
  await checkin.getByLabel('In your words (optional)').fill('sent once');
  await once('check-in', () => checkin.getByRole('button', { name: 'Check in' }).click());
  await shows(page, 'sent once');
  // Back to the page the form was on: empty, nothing to send twice.
  await page.goBack({ waitUntil: 'load', timeout: 20_000 });
  assert.equal(await page.locator('#checkin-words').inputValue(), '', 'Back showed the form still filled in');
  const cache = await page.evaluate(async () => (await fetch(location.href)).headers.get('cache-control'));
  assert.equal(cache, 'no-store');

  await page.goto(at(`/c/${circle}`), T);
  await form(page, 'Share a moment').getByLabel('What happened').fill(`a moment ${LINK} ${WORD}`);
  await once('moment', () => form(page, 'Share a moment').getByRole('button', { name: 'Share' }).click());

  await page.goto(at(`/c/${circle}/help`), T);
  const share = form(page, 'Ask for a hand, or offer one');
  await share.getByLabel('an ask').check();
  await share.getByLabel('What', { exact: true }).fill(`${WORD} ${LINK}`);
  await share.getByLabel('When (optional)').fill('w'.repeat(100));
  await once('ask', () => share.getByRole('button', { name: 'Share' }).click());

  await page.goto(at(`/c/${circle}/gatherings`), T);
  const propose = form(page, 'Propose a gathering');
  await propose.getByLabel('What').fill('g'.repeat(100));
  await propose.getByLabel('When').fill('tomorrow 7pm');
  await propose.getByLabel('Where (optional)').fill(`${LINK} ${WORD}`);
  await once('gathering', () => propose.getByRole('button', { name: 'Propose' }).click());
  const answer = form(page, 'Your answer');
  await answer.getByLabel('Yes').check();
  await answer.getByLabel('A word with it (optional)').fill(WORD);
  await once('answer', () => answer.getByRole('button', { name: 'Answer' }).click());
  const bring = form(page, 'Bring something');
  await bring.getByLabel('Dish').fill('d'.repeat(100));
  await once('dish', () => bring.getByRole('button', { name: 'Bring it' }).click());

  await page.goto(at(`/c/${circle}/people`), T);
  const profile = form(page, 'About you');
  await profile.getByLabel('What the circle should remember about you').fill(`${LINK} ${WORD}`);
  await profile.getByLabel('A little about you (optional)').fill(WORD);
  await once('profile', () => profile.getByRole('button', { name: 'Save' }).click());

  // An invite: made once, with a label; the page after it is a plain GET.
  await page.goto(at(`/c/${circle}/invite`), T);
  const invite = form(page, 'Make an invite');
  await invite.getByLabel('A label, to tell it apart (optional)').fill('l'.repeat(100));
  await once('invite', () => invite.getByRole('button', { name: 'Make an invite' }).click());
  const invites = runJson(maya.home, ['--json', 'show']).invites ?? {};
  assert.equal(Object.keys(invites).length, 1, 'refreshing made another invite');
  await page.goto(at(`/c/${circle}/pair`), T);
  await once('pairing', () => page.getByRole('button', { name: 'Make a pairing ticket' }).click());
  assert.match(await page.getByLabel('Ticket', { exact: true }).inputValue(T), /^roundtable/);

  // Every entry made once.
  const shown = runJson(maya.home, ['--json', 'show']);
  assert.equal(Object.keys(shown.checkins ?? {}).length, 1);
  assert.equal(Object.keys(shown.moments ?? {}).length, 1);
  assert.equal(Object.keys(shown.requests ?? {}).length, 1);
  assert.equal(Object.keys(shown.gatherings ?? {}).length, 1);
});

test('an invite has a label, and its ticket is shown again while it is open', async () => {
  await page.goto(at(`/c/${circle}/invite`), T);
  const label = form(page, 'Make an invite').getByLabel('A label, to tell it apart (optional)');
  await label.fill('for Sam');
  await form(page, 'Make an invite').getByRole('button', { name: 'Make an invite' }).click();
  await page.waitForURL(/\/invite\/[0-9a-f]+$/, T);
  const ticket = await page.getByLabel('Ticket', { exact: true }).inputValue(T);
  const where = page.url();
  await page.goto(at(`/c/${circle}`), T);
  await page.goto(at(`/c/${circle}/invite`), T);
  await shows(page, 'for Sam');
  await page.getByRole('link', { name: 'Show the ticket of the invite "for Sam"' }).click();
  assert.equal(page.url(), where);
  assert.equal(await page.getByLabel('Ticket', { exact: true }).inputValue(T), ticket);
  // Upper-cased by a phone, it still reads (Sam joins with it).
  const r = run(sam.home, ['join', ticket.toUpperCase(), '--as', 'Sam']);
  assert.equal(r.code, 0, `an upper-cased ticket: ${r.stderr}`);
  await page.goto(at(`/c/${circle}/invite`), T);
  await shows(page, 'Joined with it: Sam');
  // Used up: its ticket is no longer shown.
  const gone = await page.goto(where, T);
  assert.equal(gone.status(), 410);
});

test('a direct GET of every form address shows a page', async () => {
  await page.goto(at(`/c/${circle}`), T);
  const entry = await page.locator('a[href*="/e/"]').first().getAttribute('href');
  await page.goto(at(`/c/${circle}/gatherings`), T);
  const gathering = await page.locator('a[href*="/g/"]').first().getAttribute('href');
  for (const path of [
    '/create', '/join', '/new-link',
    `/c/${circle}/checkin`, `/c/${circle}/moment`, `/c/${circle}/profile`, `/c/${circle}/away`, `/c/${circle}/back`,
    `${entry}/reply`, `${entry}/commit`, `${entry}/done`, `${entry}/edit`, `${entry}/withdraw`,
    `${gathering}/rsvp`, `${gathering}/bring`, `${gathering}/came`,
  ]) {
    const res = await page.goto(at(path), T);
    assert.equal(res.status(), 200, `GET ${path} answered ${res.status()}`);
    assert.ok(await page.locator('h1').count() > 0, `GET ${path} showed no page`);
  }
  // A page left on a form's address updates without errors.
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(at(`/c/${circle}/checkin`), T);
  run(maya.home, ['moment', 'a live update']);
  await shows(page, 'a live update');
  assert.deepEqual(errors, []);
});

test('limits are the node\'s, with a counter near them', async () => {
  await page.goto(at(`/c/${circle}`), T);
  const words = page.locator('#checkin-words');
  assert.equal(await words.getAttribute('maxlength'), null, 'the page cuts what is pasted');
  assert.equal(await words.getAttribute('data-max'), '4000');
  await words.fill('x'.repeat(3990));
  await shows(page, '10 characters left.');
  await words.fill('x'.repeat(4005));
  await shows(page, '4005 of 4000 characters: 5 too many.');
  // Sent anyway (no script stops it): the node refuses it in words, and
  // the words are still there.
  await form(page, 'How are you?').getByLabel('heavy').check();
  await form(page, 'How are you?').getByRole('button', { name: 'Check in' }).click();
  await page.waitForLoadState('load');
  await shows(page, /too long/i, 'the refusal');
  assert.equal((await page.locator('#checkin-words').inputValue()).length, 4005);
});

test('taking back is asked first, on a page of its own', async () => {
  run(maya.home, ['moment', 'take me back']);
  await page.goto(at(`/c/${circle}`), T);
  await page.getByRole('link', { name: "Reply to Maya's moment" }).first().click();
  await page.getByRole('link', { name: 'Take it back…' }).click();
  await shows(page, 'Take this back?');
  await shows(page, 'take me back');
  await assertNoSeriousA11y(page, 'take back: confirmation');
  posts.length = 0;
  await page.getByRole('button', { name: 'Take it back' }).click();
  await shows(page, 'Taken back.');
  assert.equal(posts.length, 1);
});

test('revoking an invite is asked first', async () => {
  await page.goto(at(`/c/${circle}/invite`), T);
  await page.getByRole('link', { name: /Revoke the invite "l{100}"/ }).click();
  await shows(page, 'Revoke this invite?');
  await assertNoSeriousA11y(page, 'revoke an invite: confirmation');
  await page.getByRole('button', { name: 'Revoke the invite' }).click();
  await shows(page, 'The invite is revoked');
});

test('a lost device is revoked from the web, after a second look', async () => {
  const home = await tempHome();
  const second = await up(home);
  try {
    const made = runJson(maya.home, ['--json', 'pair']);
    const ticket = made.ticket ?? made.line;
    assert.ok(ticket, JSON.stringify(made));
    const r = run(home, ['pair', ticket, '--name', 'Old phone']);
    assert.equal(r.code, 0, r.stderr);
    // Its name reaches this device from the paired one.
    await page.goto(at(`/c/${circle}/people`), T);
    const named = page.getByRole('link', { name: 'Revoke Old phone, if it is lost' });
    await waitFor(async () => {
      await page.reload({ waitUntil: 'load' });
      return (await named.count()) > 0;
    }, { timeout: 60_000, what: "the paired device's name reaching Maya" });
  } finally {
    await stop(second);
  }
  // Then it is lost.
  await page.goto(at(`/c/${circle}/people`), T);
  await page.getByRole('link', { name: 'Revoke Old phone, if it is lost' }).click();
  await shows(page, 'Revoke Old phone?');
  await assertNoSeriousA11y(page, 'revoke a device: confirmation');
  await page.getByRole('button', { name: 'Revoke Old phone' }).click();
  await shows(page, 'The device is revoked');
  await shows(page, 'revoked');
});

test('consenting to a removal shows the rule first', async () => {
  joinAs(lee, LONG_NAME);
  const r = run(sam.home, ['remove', 'propose', LONG_NAME, '--reason', `${LINK} ${WORD}`]);
  assert.equal(r.code, 0, r.stderr);
  await page.goto(at(`/c/${circle}/removal`), T);
  const link = page.getByRole('link', { name: /Consider agreeing/ });
  await waitFor(async () => {
    await page.reload({ waitUntil: 'load' });
    return (await link.count()) > 0;
  }, { timeout: 60_000, what: "Sam's proposal reaching Maya" });
  await link.click();
  await shows(page, 'The rule');
  await shows(page, '2 of the 2 asked');
  await assertNoSeriousA11y(page, 'consent: confirmation');
});

test('words a member of a support group reads', async () => {
  assert.equal(run(maya.home, ['checkin', '--mood', 'okay']).code, 0);
  await page.goto(at(`/c/${circle}`), T);
  const text = await page.locator('body').innerText();
  assert.doesNotMatch(text, /is feeling (okay|struggling|thriving)/);
  assert.match(text, /Maya is doing okay/);
  await page.goto(at('/status'), T);
  const status = await page.locator('main').innerText();
  assert.doesNotMatch(status, /\b[0-9a-f]{64}\b/, 'a device id outside the details');
  assert.doesNotMatch(status, /Listening at|`/);
  for (const p of [`/c/${circle}`, `/c/${circle}/people`, `/c/${circle}/invite`]) {
    await page.goto(at(p), T);
    assert.doesNotMatch(await page.locator('body').innerText(), /`|roundtable up|\(vm\)/);
  }
});

test('every page that shows member text fits a 360 px screen', async () => {
  ({ page: phone } = await openApp(chromium, freshLink(maya), { width: 360, height: 740 }));
  await phone.goto(at(`/c/${circle}`), T);
  const entries = await phone.locator('a[href*="/e/"]').evaluateAll((as) => [...new Set(as.map((a) => a.getAttribute('href')))]);
  await phone.goto(at(`/c/${circle}/gatherings`), T);
  const gathering = await phone.locator('a[href*="/g/"]').first().getAttribute('href');
  await phone.goto(at(`/c/${circle}/removal`), T);
  const consent = await phone.locator('a[href$="/consent"]').first().getAttribute('href');
  await phone.goto(at(`/c/${circle}/people`), T);
  const wide = [];
  const pages = [
    `/c/${circle}`, `/c/${circle}/help`, `/c/${circle}/gatherings`, gathering, `/c/${circle}/people`,
    `/c/${circle}/removal`, consent, `/c/${circle}/invite`, '/status', `/c/${circle}/stewards`,
    ...entries.flatMap((e) => [e, `${e}/withdraw`]),
  ];
  let longShown = 0;
  for (const p of pages) {
    const res = await phone.goto(at(p), T);
    assert.ok(res.status() < 400, `${p} answered ${res.status()}`);
    const { over, text } = await phone.evaluate(() => ({
      over: document.documentElement.scrollWidth - window.innerWidth,
      text: document.body.innerText,
    }));
    if (over > 0) wide.push(`${p} is ${over}px too wide`);
    if (text.includes(WORD.slice(0, 200)) || text.includes(LONG_NAME)) longShown += 1;
  }
  assert.deepEqual(wide, [], `pages wider than a 360px screen:\n${wide.join('\n')}`);
  assert.ok(longShown >= 8, `long text showed on only ${longShown} of ${pages.length} pages`);
  await phone.context().close();
});

test('words typed while the node cannot be reached are kept, and sent when it answers', async () => {
  // The page's live stream, at hand to the test: losing it and hearing it
  // again is what the page goes by.
  await page.addInitScript(() => {
    const Real = window.EventSource;
    window.EventSource = class extends Real {
      constructor(...args) {
        super(...args);
        window.__stream = this;
        this.addEventListener('hello', () => { window.__heard = true; });
      }
    };
  });
  await page.goto(at(`/c/${circle}`), T);
  // In touch: the stream is open and has said its hello (which may come a
  // moment after it opens; heard after the loss below, it would undo it).
  await page.waitForFunction(() => window.__stream?.readyState === 1 && window.__heard, null, T);
  const run = await page.locator('meta[name="rt-run"]').getAttribute('content');
  // The browser loses the node...
  await page.context().setOffline(true);
  try {
    await page.evaluate(() => window.__stream.dispatchEvent(new Event('error')));
    await shows(page, 'Your node is not answering');
    const checkin = form(page, 'How are you?');
    await checkin.getByLabel('thriving').check();
    await checkin.getByLabel('In your words (optional)').fill('typed while away');
    posts.length = 0;
    await checkin.getByRole('button', { name: 'Check in' }).click();
    await shows(page, 'kept here, in this browser');
    assert.deepEqual(posts, []);
    assert.equal(await page.locator('#checkin-words').inputValue(), 'typed while away');
    const kept = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('rt-kept:')));
    assert.equal(kept.length, 1);
  } finally {
    await page.context().setOffline(false);
  }
  // ...and when it answers again (its stream says this page's run), what
  // was typed is sent, once.
  await page.evaluate((r) => window.__stream.dispatchEvent(new MessageEvent('hello', { data: r })), run);
  await shows(page, 'Checked in: thriving.');
  await shows(page, 'typed while away');
  assert.equal(posts.length, 1);
  assert.deepEqual(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('rt-kept:'))), []);
});

test('when the node itself stops, the words are kept and offered again once it is back', async () => {
  await page.goto(at(`/c/${circle}`), T);
  const home = maya.home;
  const port = Number(new URL(maya.origin).port);
  await stop(maya);
  await shows(page, 'Your node is not answering');
  const moment = form(page, 'Share a moment');
  await moment.getByLabel('What happened').fill('written while the node was off');
  posts.length = 0;
  await moment.getByRole('button', { name: 'Share' }).click();
  await shows(page, 'kept here, in this browser');
  assert.deepEqual(posts, []);
  maya = await up(home, [], { web: `127.0.0.1:${port}` });
  // The node is back, at the same address: this page was of the run that
  // ended, so it sends nothing and says so, the words still in its form.
  await shows(page, 'Roundtable was restarted');
  assert.equal(await page.locator('#moment-words').inputValue(), 'written while the node was off');
  assert.equal(new URL(maya.origin).host, new URL(page.url()).host, 'the same address as before');
  assert.deepEqual(posts, []);
  // Opened again in this browser, every page points to what was kept,
  // and its own page has it back in the form, ready to send.
  const again = await page.context().newPage();
  again.on('request', (r) => {
    if (r.method() === 'POST') posts.push(new URL(r.url()).pathname);
  });
  try {
    await again.goto(freshLink(maya), T);
    await again.waitForURL((u) => u.pathname !== '/login', T);
    await again.goto(at('/status'), T);
    const pointer = again.locator('.kept-elsewhere');
    await pointer.waitFor({ state: 'visible', ...T });
    assert.match(await pointer.innerText(), /written while the node was off/);
    await pointer.getByRole('link', { name: 'Open it to send it' }).click();
    const moment = form(again, 'Share a moment');
    await shows(again, 'Not sent yet');
    assert.equal(await again.locator('#moment-words').inputValue(), 'written while the node was off');
    assert.deepEqual(posts, [], 'nothing is sent before the person says so');
    await moment.getByRole('button', { name: 'Share' }).click();
    await again.waitForURL(/\/c\/[0-9a-f]+$/, T);
    await shows(again, 'written while the node was off');
    assert.equal(posts.length, 1);
    assert.deepEqual(await again.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('rt-kept:'))), []);
    await again.goto(at('/status'), T);
    assert.equal(await again.locator('.kept-elsewhere').count(), 0);
    const shared = runJson(maya.home, ['--json', 'feed']);
    assert.match(JSON.stringify(shared), /written while the node was off/);
  } finally {
    await again.close();
  }
});

test('words kept but no longer wanted can be put away, for good', async () => {
  await page.close().catch(() => {});
  ({ page } = await openApp(chromium, freshLink(maya)));
  await page.evaluate((path) => localStorage.setItem(`rt-kept:${path}`, JSON.stringify({
    at: Date.now(), fields: { text: 'never mind' },
  })), `/c/${circle}/moment`);
  await page.goto(at('/status'), T);
  const pointer = page.locator('.kept-elsewhere');
  await pointer.waitFor({ state: 'visible', ...T });
  await pointer.getByRole('button', { name: 'Forget it' }).click();
  assert.equal(await pointer.count(), 0);
  assert.deepEqual(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('rt-kept:'))), []);
  await page.reload({ waitUntil: 'load' });
  assert.equal(await page.locator('.kept-elsewhere').count(), 0);
});

test('the person a circle removed is told so on its pages, kindly, and offered no form', async () => {
  // Sam proposed removing Lee (above); Maya agrees, which completes it.
  await page.goto(at(`/c/${circle}/removal`), T);
  await page.getByRole('link', { name: /Consider agreeing/ }).first().click();
  await page.getByRole('button', { name: /I agree/ }).click();
  await waitFor(() => {
    const people = runJson(maya.home, ['--json', 'members']);
    return people.some((m) => m.name === LONG_NAME && m.removed);
  }, { timeout: 60_000, what: 'the removal completing on Maya\'s device' });
  // Lee's node, refused by the others, learns of it from the records.
  const { page: lees } = await openApp(chromium, freshLink(lee));
  try {
    await waitFor(async () => {
      await lees.goto(new URL(`/c/${circle}`, lee.origin).href, T);
      return (await lees.getByText('You are no longer in').count()) > 0;
    }, { timeout: 60_000, what: 'Lee hearing of the removal' });
    assert.equal(await lees.locator('main form:visible').count(), 0, 'no form to write with');
    await assertNoSeriousA11y(lees, 'removed: circle page');
    const r = run(lee.home, ['checkin', '--mood', 'okay']);
    assert.notEqual(r.code, 0, 'a check-in is refused');
    assert.match(r.stderr, /no longer in/);
  } finally {
    await lees.context().close();
  }
});
