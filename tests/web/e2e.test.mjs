// The web app end to end: two real nodes (`roundtable up`, separate
// processes on loopback), each with its own headless Chromium. Maya starts
// a circle and invites Sam entirely through her browser; Sam joins from the
// pasted ticket in his; then the circle's life round-trips between the two
// pages without a reload, every page passes an accessibility check and
// wraps the longest words at a phone's width, requests without the
// secret, with a wrong Host, or from another origin are refused, and no
// other program of the machine gets a session that works: not on another
// port, not on the app's port while the node restarts.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import {
  tempHome, up, stop, browser, closeBrowser, openApp, cookieOf, freshLink, assertNoSeriousA11y, rawRequest, run, runJson, waitFor, withTimeout, shows, mark, stillSamePage, form,
} from './harness.mjs';

const T = { timeout: 30_000 };
let chromium;
let maya;
let sam;
let mayaPage;
let samPage;
const visited = [];

/** Asserts no serious or critical accessibility problem, and notes the page. */
async function checked(page, label) {
  visited.push(label);
  await assertNoSeriousA11y(page, label);
}

before(async () => {
  const [mh, sh] = [await tempHome(), await tempHome()];
  maya = await up(mh);
  sam = await up(sh);
  chromium = await browser();
  ({ page: mayaPage } = await openApp(chromium, maya.url));
  ({ page: samPage } = await openApp(chromium, sam.url));
});

after(async () => {
  if (chromium) await closeBrowser(chromium);
  for (const n of [maya, sam]) if (n) await stop(n);
});

test('a circle is started, a newcomer invited and joined, all in the browser', async () => {
  // Maya: the first-run page, then a new circle.
  await mayaPage.waitForURL(/\/welcome$/, T);
  await shows(mayaPage, 'Welcome to Roundtable');
  await checked(mayaPage, 'welcome');
  const start = form(mayaPage, 'Start a circle');
  await start.getByLabel('Circle name').fill('Tuesday Supper');
  await start.getByLabel('Your name').fill('Maya');
  await start.getByRole('button', { name: 'Start the circle' }).click();
  await mayaPage.waitForURL(/\/c\/[0-9a-f]+$/, T);
  await shows(mayaPage, '"Tuesday Supper" is started');
  await checked(mayaPage, 'home');

  // An invite: the ticket as text and as a QR code.
  await mayaPage.getByRole('link', { name: 'Invite', exact: true }).click();
  await checked(mayaPage, 'invite');
  const invite = form(mayaPage, 'Make an invite');
  await invite.getByLabel('How many people may use it').fill('2');
  await invite.getByRole('button', { name: 'Make an invite' }).click();
  const ticket = await mayaPage.getByLabel('Ticket', { exact: true }).inputValue(T);
  assert.match(ticket, /^roundtable/);
  await assert.doesNotReject(mayaPage.getByRole('img', { name: /QR code of the ticket/ }).waitFor(T));
  await shows(mayaPage, '0 of 2 used');
  await checked(mayaPage, 'invite with a ticket');

  // Sam pastes it on his own device and says his name.
  await samPage.waitForURL(/\/welcome$/, T);
  const join = form(samPage, 'Join with a ticket');
  await join.getByLabel('Ticket').fill(ticket);
  await join.getByLabel('Your name', { exact: true }).fill('Sam');
  await join.getByRole('button', { name: 'Join' }).click();
  await samPage.waitForURL(/\/c\/[0-9a-f]+$/, { timeout: 60_000 });
  await shows(samPage, "You're in: Tuesday Supper. Welcome.");
  await shows(samPage, 'Maya joined the circle');

  // Maya's invite page learns it was used, without a reload.
  await mark(mayaPage);
  await shows(mayaPage, 'Joined with it: Sam');
  await stillSamePage(mayaPage);
});

test('a failed form says why in words and keeps what was typed', async () => {
  await mayaPage.getByRole('link', { name: 'Gatherings' }).click();
  await checked(mayaPage, 'gatherings');
  const propose = form(mayaPage, 'Propose a gathering');
  await propose.getByLabel('What').fill('Soup night');
  await propose.getByLabel('When').fill('someday soon');
  await propose.getByRole('button', { name: 'Propose' }).click();
  await shows(mayaPage, 'Could not read "someday soon" as a date');
  assert.equal(await propose.getByLabel('What').inputValue(), 'Soup night');
  assert.equal(await propose.getByLabel('When').inputValue(), 'someday soon');
  await checked(mayaPage, 'gatherings with a problem');
});

test('the keyboard alone is enough, and focus can be seen', async () => {
  // Loaded afresh (not a click still under way), so Tab starts at the top.
  const home = await mayaPage.getByRole('link', { name: 'Home' }).getAttribute('href');
  await mayaPage.goto(new URL(home, mayaPage.url()).href, { waitUntil: 'load', timeout: 20_000 });
  await mayaPage.keyboard.press('Tab');
  const first = await mayaPage.evaluate(() => ({
    text: document.activeElement?.textContent,
    outline: getComputedStyle(document.activeElement).outlineStyle,
  }));
  assert.equal(first.text, 'Skip to the page');
  assert.notEqual(first.outline, 'none', 'the focused link shows no focus ring');
  // Tab to the first mood, choose it with the arrow keys, say a word,
  // and send it with Enter.
  let onMood = false;
  for (let i = 0; i < 40 && !onMood; i++) {
    await mayaPage.keyboard.press('Tab');
    onMood = await mayaPage.evaluate(() => document.activeElement?.name === 'mood');
  }
  assert.ok(onMood, 'the moods cannot be reached with Tab');
  await mayaPage.keyboard.press('ArrowRight');
  await mayaPage.keyboard.press('Tab');
  await mayaPage.keyboard.type('typed without a mouse');
  await mayaPage.keyboard.press('Tab');
  await mayaPage.keyboard.press('Enter');
  await shows(mayaPage, 'Checked in: okay.');
  await shows(mayaPage, 'typed without a mouse');
});

test('a check-in in one browser appears in the other without a reload', async () => {
  await mayaPage.getByRole('link', { name: 'Home' }).click();
  await samPage.getByRole('link', { name: 'Home' }).click();
  await mark(samPage);
  const checkin = form(mayaPage, 'How are you?');
  await checkin.getByLabel('heavy').check();
  await checkin.getByLabel('In your words (optional)').fill('long week, tired');
  await checkin.getByRole('button', { name: 'Check in' }).click();
  await shows(mayaPage, 'Checked in: heavy.');
  await shows(samPage, 'long week, tired');
  await stillSamePage(samPage);
  // The next change sends Sam's page only what it has not got: the item it
  // holds stays the very element it was (marked here), not sent again.
  await samPage.evaluate(() => {
    const item = [...document.querySelectorAll('#life li.item')].find((li) => li.textContent.includes('long week, tired'));
    item.firstElementChild.dataset.kept = 'yes';
  });
  const again = form(mayaPage, 'How are you?');
  await again.getByLabel('okay').check();
  await again.getByLabel('In your words (optional)').fill('soup helped');
  await again.getByRole('button', { name: 'Check in' }).click();
  await shows(samPage, 'soup helped');
  await stillSamePage(samPage);
  const kept = await samPage.evaluate(() => [...document.querySelectorAll('#life li.item')]
    .filter((li) => li.textContent.includes('long week, tired'))
    .map((li) => li.firstElementChild.dataset.kept || 'sent again'));
  assert.deepEqual(kept, ['yes']);
  // Both see each other in touch.
  await shows(samPage, /In touch with Maya/, 'in touch with Maya');
  await shows(mayaPage, /In touch with Sam/, 'in touch with Sam');
});

test('a reply in words reaches the one who checked in', async () => {
  await samPage.getByRole('link', { name: 'Reply to Maya' }).first().click();
  await checked(samPage, 'entry');
  const reply = form(samPage, 'Reply');
  await reply.getByLabel('Your reply').fill('Thinking of you. Soup on Thursday?');
  await reply.getByRole('button', { name: 'Reply' }).click();
  await shows(samPage, 'Your reply is with the circle.');
  await mark(mayaPage);
  await shows(mayaPage, 'Thinking of you. Soup on Thursday?');
  await stillSamePage(mayaPage);
});

test('a gathering: an answer and a potluck dish round-trip', async () => {
  await mayaPage.getByRole('link', { name: 'Gatherings' }).click();
  const propose = form(mayaPage, 'Propose a gathering');
  await propose.getByLabel('What').fill('Soup night');
  await propose.getByLabel('When').fill('tomorrow 7pm');
  await propose.getByLabel('Where (optional)').fill("Maya's kitchen");
  await propose.getByRole('button', { name: 'Propose' }).click();
  await shows(mayaPage, '"Soup night" is on the table.');
  await checked(mayaPage, 'gathering');
  await mark(mayaPage);

  await samPage.getByRole('link', { name: 'Gatherings' }).click();
  await samPage.getByRole('link', { name: 'Soup night' }).click(T);
  const answer = form(samPage, 'Your answer');
  await answer.getByLabel('Yes').check();
  await answer.getByLabel('A word with it (optional)').fill('might be late');
  await answer.getByRole('button', { name: 'Answer' }).click();
  await shows(samPage, "You're coming. See you there.");
  const bring = form(samPage, 'Bring something');
  await bring.getByLabel('Dish').fill('lentil soup');
  await bring.getByLabel('Dietary notes (optional)').fill('vegan');
  await bring.getByRole('button', { name: 'Bring it' }).click();
  await shows(samPage, "You're bringing lentil soup.");

  await shows(mayaPage, '“might be late”', 'the RSVP note');
  await shows(mayaPage, 'lentil soup');
  await stillSamePage(mayaPage);
});

test('an ask is taken up and closed with thanks', async () => {
  await samPage.getByRole('link', { name: 'Asks & offers' }).click();
  await checked(samPage, 'asks and offers');
  const share = form(samPage, 'Ask for a hand, or offer one');
  await share.getByLabel('an ask').check();
  await share.getByLabel('What', { exact: true }).fill('A lift to the clinic');
  await share.getByLabel('When (optional)').fill('Tuesday morning');
  await share.getByRole('button', { name: 'Share' }).click();
  await shows(samPage, 'Asking is wisdom.');

  await mayaPage.getByRole('link', { name: 'Asks & offers' }).click();
  await mayaPage.getByRole('link', { name: /Sam asks: A lift to the clinic/ }).click(T);
  const commit = form(mayaPage, 'Can you help?');
  await commit.getByLabel("What you'll do").fill("I'll drive you");
  await commit.getByRole('button', { name: "I'll do it" }).click();
  await shows(mayaPage, "The circle knows you'll do it.");
  await mark(mayaPage);

  await samPage.getByRole('link', { name: /Sam asks: A lift to the clinic/ }).click(T);
  await shows(samPage, "I'll drive you");
  const done = form(samPage, 'Close it, with thanks');
  await done.getByLabel('Thanks (optional)').fill('Thank you, Maya!');
  await done.getByRole('button', { name: 'Mark done' }).click();
  await shows(samPage, 'Thank you for closing the loop.');
  await shows(mayaPage, 'Thank you, Maya!');
  await stillSamePage(mayaPage);
});

test('a dish brought twice while apart is said on both pages and settled from one', async () => {
  // Maya proposes a potluck that asks for one of each dish.
  await mayaPage.getByRole('link', { name: 'Gatherings' }).click();
  const propose = form(mayaPage, 'Propose a gathering');
  await propose.getByLabel('What').fill('Pie night');
  await propose.getByLabel('When').fill('tomorrow 8pm');
  await propose.getByLabel('Potluck: one of each dish').check();
  await propose.getByRole('button', { name: 'Propose' }).click();
  await shows(mayaPage, '"Pie night" is on the table.');
  const pie = new URL(mayaPage.url()).pathname;
  await samPage.getByRole('link', { name: 'Gatherings' }).click();
  await shows(samPage, 'Pie night');

  // Apart: Sam's node is off while both say they will bring apple pie.
  const samHome = sam.home;
  const samPort = Number(new URL(sam.origin).port);
  await stop(sam);
  sam = undefined;
  const bring = form(mayaPage, 'Bring something');
  await bring.getByLabel('Dish').fill('apple pie');
  await bring.getByRole('button', { name: 'Bring it' }).click();
  await shows(mayaPage, "You're bringing apple pie.");
  const gathering = pie.split('/').pop();
  const offline = run(samHome, ['gathering', 'bring', gathering.slice(0, 8), 'Apple', 'pie']);
  assert.equal(offline.code, 0, offline.stderr);
  await mark(mayaPage);

  // They meet again: both pages say so, Maya's without a reload.
  sam = await up(samHome, [], { web: `127.0.0.1:${samPort}` });
  ({ page: samPage } = await openApp(chromium, sam.url));
  await samPage.goto(new URL(pie, sam.origin).href);
  // Sam's node finds Maya's again first: give it the time a restart takes.
  const met = { state: 'visible', timeout: 60_000 };
  await mayaPage.getByText(/You and Sam are both bringing/).waitFor(met);
  await samPage.getByText(/You and Maya are both bringing/).waitFor(met);
  await stillSamePage(mayaPage);
  await checked(samPage, 'gathering with a double-up');

  // Sam steps aside; the notice leaves both pages.
  await samPage.getByRole('button', { name: 'Step aside' }).click();
  await shows(samPage, 'Settled: step aside.');
  await mayaPage.getByText(/both bringing/).waitFor({ state: 'detached', ...T });
  await samPage.getByText(/both bringing/).waitFor({ state: 'detached', ...T });
  await stillSamePage(mayaPage);
});

test('an ask two people took up while apart is said on both pages and settled from one', async () => {
  // Lee joins from the command line and asks for a lift.
  const lee = await up(await tempHome());
  try {
    const made = runJson(maya.home, ['--json', 'invite']);
    const joined = run(lee.home, ['join', made.ticket, '--as', 'Lee']);
    assert.equal(joined.code, 0, joined.stderr);
    const ask = runJson(lee.home, ['--json', 'ask', 'a lift to the clinic', '--when', 'Thursday']).id;
    const has = (node) => () => runJson(node.home, ['--json', 'show']).requests?.[ask] !== undefined;
    await waitFor(has(maya), { timeout: 60_000, what: "Lee's ask reaching Maya" });
    await waitFor(has(sam), { timeout: 60_000, what: "Lee's ask reaching Sam" });
    const circle = new URL(mayaPage.url()).pathname.split('/')[2];
    const entry = `/c/${circle}/e/${ask}`;

    // Apart: Sam's node is off while both say they will drive.
    const samHome = sam.home;
    const samPort = Number(new URL(sam.origin).port);
    await stop(sam);
    sam = undefined;
    await mayaPage.goto(new URL(entry, maya.origin).href);
    const commit = form(mayaPage, 'Can you help?');
    await commit.getByLabel("What you'll do").fill("I'll drive");
    await commit.getByRole('button', { name: "I'll do it" }).click();
    await shows(mayaPage, "The circle knows you'll do it.");
    const offline = run(samHome, ['commit', ask.slice(0, 8), 'I can take Lee']);
    assert.equal(offline.code, 0, offline.stderr);
    await mark(mayaPage);

    // They meet again: both pages say so, Maya's without a reload.
    sam = await up(samHome, [], { web: `127.0.0.1:${samPort}` });
    ({ page: samPage } = await openApp(chromium, sam.url));
    await samPage.goto(new URL(entry, sam.origin).href);
    const met = { state: 'visible', timeout: 60_000 };
    await mayaPage.getByText(/You and Sam both took up Lee's ask/).waitFor(met);
    await samPage.getByText(/You and Maya both took up Lee's ask/).waitFor(met);
    await stillSamePage(mayaPage);
    await checked(samPage, 'ask with a double-up');

    // Sam steps aside; the notice leaves both pages, and Lee's copy agrees.
    await samPage.getByRole('button', { name: 'Step aside' }).click();
    await shows(samPage, 'Settled: step aside.');
    await mayaPage.getByText(/both took up/).waitFor({ state: 'detached', ...T });
    await samPage.getByText(/both took up/).waitFor({ state: 'detached', ...T });
    await stillSamePage(mayaPage);
    await waitFor(
      () => runJson(lee.home, ['--json', 'show']).double_ups.length === 0
        && Object.keys(runJson(lee.home, ['--json', 'show']).requests[ask].commitments).length === 1,
      { timeout: 60_000, what: "Lee's copy settled too" },
    );
  } finally {
    await stop(lee);
  }
});

test('stepping back and coming back, seen by the circle', async () => {
  await samPage.getByRole('link', { name: 'People' }).click();
  await checked(samPage, 'people');
  const away = form(samPage, 'Stepping back');
  await away.getByLabel('Until (optional)').fill('next week');
  await away.getByLabel('A word for the circle (optional)').fill('family stuff');
  await away.getByRole('button', { name: 'Step back' }).click();
  await shows(samPage, 'Take the time you need.');
  await mayaPage.getByRole('link', { name: 'Home' }).click();
  await shows(mayaPage, /Sam is stepping back.*family stuff/, 'Sam stepping back');
  await samPage.getByRole('button', { name: "I'm back" }).click();
  await shows(samPage, 'Welcome back.');
});

test('profile, pairing, removal and status pages read well', async () => {
  await mayaPage.getByRole('link', { name: 'People' }).click();
  const profile = form(mayaPage, 'About you');
  await profile.getByLabel('What the circle should remember about you').fill('vegetarian');
  await profile.getByRole('button', { name: 'Save' }).click();
  await shows(mayaPage, 'Your profile is updated.');
  await samPage.getByRole('link', { name: 'People' }).click();
  await shows(samPage, 'Remember: vegetarian');

  await mayaPage.getByRole('link', { name: 'Pair another device' }).click();
  await mayaPage.getByRole('button', { name: 'Make a pairing ticket' }).click();
  assert.match(await mayaPage.getByLabel('Ticket', { exact: true }).inputValue(T), /^roundtable/);
  await checked(mayaPage, 'pair');

  await mayaPage.goto(mayaPage.url().replace(/\/pair(\/[0-9a-f]+)?$/, '/removal'));
  await shows(mayaPage, 'Nobody owns the table');
  await checked(mayaPage, 'removal');

  await mayaPage.getByRole('link', { name: 'Status' }).click();
  await shows(mayaPage, 'Devices');
  await checked(mayaPage, 'status');

  // The same on a phone-sized screen.
  const { page: phone, context } = await openApp(chromium, freshLink(maya), { width: 360, height: 740 });
  await phone.waitForURL(/\/c\/[0-9a-f]+$/, T);
  await checked(phone, 'home on a phone');
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the home page is ${overflow}px wider than a 360px screen`);
  await context.close();
});

test('without the secret, with a wrong Host, or from another origin: refused', async () => {
  const origin = maya.origin;
  const host = new URL(origin).host;
  const cookie = await cookieOf(mayaPage.context(), origin);
  assert.ok(cookie, 'the browser holds the session cookie');
  const was = runJson(maya.home, ['--json', 'show']);

  const bare = await rawRequest({ origin, path: '/', headers: { Host: host } });
  assert.equal(bare.status, 401);
  const rebound = await rawRequest({
    origin, path: '/', headers: { Host: `rebound.example:${new URL(origin).port}`, Cookie: `rt_session=${cookie}` },
  });
  assert.equal(rebound.status, 421);
  const body = 'mood=struggling&note=forged';
  const circle = was.circle.id;
  const cross = await rawRequest({
    origin,
    path: `/c/${circle}/checkin`,
    method: 'POST',
    headers: {
      Host: host, Cookie: `rt_session=${cookie}`, Origin: 'http://evil.example',
      'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': String(body.length),
    },
    body,
  });
  assert.equal(cross.status, 403);
  // A page of another origin in the same browser cannot post either: its
  // request carries no cookie (SameSite=Strict) and no form token.
  const evil = await mayaPage.context().newPage();
  await evil.setContent(`<form id="f" method="post" action="${origin}/c/${circle}/checkin">
      <input name="mood" value="struggling"><input name="note" value="forged"></form>`);
  const [answer] = await Promise.all([
    evil.waitForNavigation(T),
    evil.evaluate(() => document.getElementById('f').submit()),
  ]);
  assert.ok(answer && answer.status() >= 400, `a cross-site form was answered ${answer?.status()}`);
  await evil.close();
  const afterShow = runJson(maya.home, ['--json', 'show']);
  assert.ok(!JSON.stringify(afterShow).includes('forged'), 'a forged check-in landed');
  assert.equal(Object.keys(afterShow.checkins ?? {}).length, Object.keys(was.checkins ?? {}).length);
});

/** Listens on `port` of `host`; resolves once it does. */
function listen(server, port, host) {
  return withTimeout(new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server.address().port));
  }), 10_000, `listening on ${host}:${port}`);
}

function close(server) {
  server.closeAllConnections?.();
  return withTimeout(new Promise((resolve) => server.close(() => resolve())), 10_000, 'closing a server');
}

test('every page wraps a 2,000-letter word and a long link at 360 px', async () => {
  const word = 'w'.repeat(2000);
  const link = `https://example.org/${'a'.repeat(230)}`;
  assert.equal(link.length, 250);
  for (const args of [
    ['checkin', '--mood', 'okay', `${link} ${word}`],
    ['moment', word],
    ['ask', `${word} ${link}`, '--when', 'w'.repeat(100)],
    ['profile', '--remember', `${link} ${word}`],
  ]) {
    const r = run(maya.home, args);
    assert.equal(r.code, 0, `roundtable ${args[0]}: ${r.stderr}`);
  }
  const { page: phone, context } = await openApp(chromium, freshLink(maya), { width: 360, height: 740 });
  try {
    await phone.waitForURL(/\/c\/[0-9a-f]+$/, T);
    const start = new URL(phone.url()).pathname;
    const queue = [start];
    const seen = new Set(queue);
    const wide = [];
    let shown = 0;
    while (queue.length > 0 && seen.size <= 40) {
      const where = queue.shift();
      const res = await phone.goto(new URL(where, maya.origin).href, { waitUntil: 'load', timeout: 20_000 });
      assert.ok(res && res.status() < 400, `${where} answered ${res?.status()}`);
      const page = await phone.evaluate(() => ({
        over: document.documentElement.scrollWidth - window.innerWidth,
        text: document.body.innerText,
        links: [...document.querySelectorAll('a[href^="/"]')].map((a) => a.getAttribute('href')),
      }));
      if (page.over > 1) wide.push(`${where} is ${page.over}px too wide`);
      if (page.text.includes(word.slice(0, 50))) shown += 1;
      for (const href of page.links) {
        const next = href.split('#')[0];
        if (!next || next.startsWith('/assets') || next.includes('export') || seen.has(next)) continue;
        seen.add(next);
        queue.push(next);
      }
    }
    assert.deepEqual(wide, [], `pages wider than a 360px screen:\n${wide.join('\n')}`);
    assert.ok(seen.size >= 8, `only ${seen.size} pages were reached: ${[...seen].join(', ')}`);
    assert.ok(shown >= 3, `the long word showed on only ${shown} pages`);
  } finally {
    await context.close();
  }
});

test('a program on another port of this machine gets no cookie', async () => {
  const context = mayaPage.context();
  assert.ok(await cookieOf(context, maya.origin), 'the browser holds the session cookie');
  const got = [];
  const squatter = http.createServer((req, res) => {
    got.push(`${req.headers.host} ${req.headers.cookie ?? ''}`);
    res.writeHead(200, { 'Content-Type': 'text/html' }).end('<a id="next" href="/next">next</a>');
  });
  const port = await listen(squatter, 0, '127.0.0.1');
  const page = await context.newPage();
  try {
    for (const url of [`http://127.0.0.1:${port}/`, `http://localhost:${port}/`]) {
      await page.goto(url, T);
      await Promise.all([page.waitForURL(/\/next$/, T), page.click('#next')]);
    }
  } finally {
    await page.close();
    await close(squatter);
  }
  assert.ok(got.length >= 4, `the squatter saw ${got.length} requests`);
  for (const g of got) assert.ok(!g.includes('rt_session'), `the squatter got the cookie: ${g}`);
});

test('a tab whose node restarted sends nothing, and what it leaked works against nothing', async () => {
  const home = await tempHome();
  const first = await up(home);
  const port = Number(new URL(first.origin).port);
  const { page, context } = await openApp(chromium, first.url);
  let second;
  const servers = [];
  try {
    await page.waitForURL(/\/welcome$/, T);
    const cookie = await cookieOf(context, first.origin);
    assert.ok(cookie);
    await stop(first);
    // Another program takes the port, on both loopbacks.
    const got = [];
    const posts = [];
    const handler = (req, res) => {
      got.push(`${req.method} ${req.url} ${req.headers.cookie ?? ''}`);
      if (req.method === 'POST') posts.push(req.url);
      if (req.url === '/events') {
        res.writeHead(200, { 'Content-Type': 'text/event-stream' });
        res.write('event: hello\ndata: not-your-node\n\nevent: net\ndata: {"online":true,"words":"All is well"}\n\n');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/html' }).end('<p>hello</p>');
    };
    for (const host of ['127.0.0.1', '::1']) {
      const server = http.createServer(handler);
      try {
        await listen(server, port, host);
        servers.push(server);
      } catch {
        // No IPv6 here: nobody can listen there either.
      }
    }
    // The tab reconnects by itself, with its cookie...
    await waitFor(() => got.some((g) => g.startsWith('GET /events') && g.includes(cookie)), {
      timeout: 30_000, what: 'the tab reconnecting to the port',
    });
    // ...and, not hearing its own node, sends nothing.
    const start = form(page, 'Start a circle');
    await start.getByLabel('Circle name').fill('Leaked');
    await start.getByLabel('Your name').fill('Ann');
    await start.getByRole('button', { name: 'Start the circle' }).click();
    await shows(page, 'not in touch with your node');
    assert.deepEqual(posts, []);
    // `up` refuses the taken port, naming who holds it, and moves nowhere.
    const refused = run(home, [
      'up', '--listen', '127.0.0.1:0', '--relay', 'none', '--no-mdns', '--no-browser', '--web', `127.0.0.1:${port}`,
    ]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /taken by another program of yours/);
    assert.doesNotMatch(refused.stdout, /http/);
    for (const server of servers.splice(0)) await close(server);
    // The node again on its port, at its kept name: the leaked cookie was
    // of a run that is over, and works no more.
    second = await up(home, [], { web: `127.0.0.1:${port}` });
    assert.equal(second.origin, first.origin);
    const r = await rawRequest({
      origin: second.origin, path: '/welcome', headers: { Host: new URL(second.origin).host, Cookie: `rt_session=${cookie}` },
    });
    assert.equal(r.status, 401, `${second.origin} answered ${r.status}`);
    // The old tab, reloaded, is told how to get back in.
    await page.reload({ waitUntil: 'load', timeout: 20_000 });
    await shows(page, 'roundtable web --open');
  } finally {
    for (const server of servers) await close(server);
    await context.close();
    if (second) await stop(second);
    await stop(first);
  }
});

test('a page says when this device is offline', async () => {
  await mayaPage.getByRole('link', { name: 'Home' }).click();
  await shows(mayaPage, /In touch with Sam/, 'in touch with Sam');
  await stop(sam);
  sam = undefined;
  await shows(mayaPage, /^Offline/, 'the offline notice');
  assert.ok(visited.length >= 12, `only ${visited.length} pages were checked: ${visited.join(', ')}`);
});
