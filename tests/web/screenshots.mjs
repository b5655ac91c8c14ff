// Regenerates the screenshots in docs/screenshots/ of the local web app:
//
//   cargo build -p roundtable && node tests/web/screenshots.mjs [NAME...]
//
// (after `npm ci --prefix tests/web`; chromium from `apt-get install chromium`
// or env CHROMIUM). It starts a node in a fresh temporary home, and for each
// entry of PAGES writes docs/screenshots/NAME-desktop.png (1280x800) and
// NAME-phone.png (360x740), full page. With NAMEs, only those pages are
// photographed, though every page's setup still runs. ROUNDTABLE_BIN picks
// another binary than target/debug/roundtable.

import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

import { bin, browser, closeBrowser, freshLink, openApp, repoRoot, run, runJson, stop, tempHome, up } from './harness.mjs';

// Screenshots show a lived-in circle; `--now` backdates its history.

/**
 * The pages, in order. They share one home and one running node, so a page's
 * setup can build on what the setups before it made. An entry is
 * `{name, path?, setup?}`: `setup({home, node, origin, run, runJson})` runs
 * once before the page is photographed (`run`/`runJson` take the CLI's
 * arguments, e.g. `runJson(['--json', 'status'])`) and may return the path
 * to open, for pages whose address depends on what it made.
 */
const PAGES = [
  { name: 'welcome', path: '/welcome' },
  { name: 'home', setup: async (ctx) => `/c/${(await lifeOfACircle(ctx)).circle}` },
  { name: 'checkin', setup: ({ made }) => `/c/${made.circle}/e/${made.struggling}` },
  { name: 'asks-and-offers', setup: ({ made }) => `/c/${made.circle}/help` },
  { name: 'gathering', setup: ({ made }) => `/c/${made.circle}/g/${made.gathering}` },
  { name: 'people', setup: ({ made }) => `/c/${made.circle}/people` },
  {
    name: 'invite',
    setup: ({ made }) => `/c/${made.circle}/invite`,
    act: async (page) => {
      await page.getByRole('button', { name: 'Make an invite' }).click();
      await page.getByRole('img', { name: /QR code/ }).waitFor({ timeout: 20_000 });
    },
  },
  { name: 'status', path: '/status' },
];

const DAY = 86_400_000;

/** An RFC 3339 time `days` ago (negative: ahead). */
function ago(days) {
  return new Date(Date.now() - days * DAY).toISOString();
}

/**
 * A circle with some life in it: Maya's node (the one photographed) and two
 * friends who joined with tickets and ran their own nodes for a while.
 * Returns the ids the pages need.
 */
async function lifeOfACircle(ctx) {
  const maya = (args) => ctx.runJson(['--json', ...args]);
  const made = {};
  made.circle = maya(['--now', ago(30), 'circle', 'create', 'Tuesday Supper', '--as', 'Maya',
    '--about', 'Soup, stories and looking out for each other. Tuesdays at 7.']).circle;
  const friends = [];
  for (const name of ['Sam', 'Ana']) {
    const ticket = maya(['invite', '--expires', '1h']).ticket;
    const h = await tempHome();
    runJson(h, ['--json', 'join', ticket, '--as', name]);
    friends.push({ name, home: h, node: await up(h) });
  }
  const as = (f) => (args) => runJson(f.home, ['--json', ...args]);
  const [sam, ana] = friends.map(as);
  // Ana checked in every couple of days, then went quiet.
  for (const d of [24, 21, 19, 16, 14, 11, 9]) ana(['--now', ago(d), 'checkin', '--mood', 'okay', 'getting by']);
  maya(['--now', ago(6), 'moment', 'The first snow on the allotment. Sam\'s leeks survived!']);
  sam(['--now', ago(3), 'profile', '--pronouns', 'he/him', '--remember', 'allergic to peanuts; two cats, Miso and Tofu']);
  maya(['--now', ago(3), 'profile', '--pronouns', 'she/her', '--remember', 'vegetarian; my sister Ines visits in December']);
  made.struggling = sam(['--now', ago(1.2), 'checkin', '--mood', 'struggling', 'Rough week at work, not sleeping much.']).id;
  maya(['--now', ago(1.1), 'reply', made.struggling, 'Thinking of you, Sam. Want to walk on Saturday?']);
  const ask = sam(['--now', ago(1), 'ask', 'A lift to the clinic', '--when', 'Thursday morning']).id;
  maya(['--now', ago(0.9), 'commit', ask, "I'll drive you, 9:15 at yours"]);
  maya(['--now', ago(0.8), 'offer', 'Spare soup in the freezer, lentil and leek', '--when', 'this week']);
  made.gathering = maya(['--now', ago(0.5), 'gathering', 'new', 'Soup night', '--at', 'tuesday 7pm', '--place', "Maya's kitchen"]).id;
  maya(['gathering', 'rsvp', made.gathering, 'yes']);
  maya(['gathering', 'bring', made.gathering, 'leek and potato soup', '--dietary', 'vegetarian']);
  sam(['gathering', 'rsvp', made.gathering, 'yes', '--note', 'might be a little late']);
  sam(['gathering', 'bring', made.gathering, 'bread', '--dietary', 'contains gluten']);
  maya(['--now', ago(0.2), 'checkin', '--mood', 'thriving', 'The soup is on. See you Tuesday!']);
  // Let everything reach Maya's node, then the friends leave; the page
  // shows who is in touch as it is.
  const want = JSON.stringify(sam(['show']));
  for (let i = 0; i < 200 && JSON.stringify(maya(['show'])) !== want; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const f of friends.filter((f) => f.name === 'Ana')) await stop(f.node);
  ctx.made = made;
  ctx.keep = friends;
  return made;
}

const SIZES = [
  { suffix: 'desktop', width: 1280, height: 800 },
  { suffix: 'phone', width: 360, height: 740, contextOptions: { isMobile: true, hasTouch: true } },
];

const OUT = path.join(repoRoot, 'docs', 'screenshots');

async function main() {
  const only = process.argv.slice(2);
  const unknown = only.filter((n) => !PAGES.some((p) => p.name === n));
  if (unknown.length) throw new Error(`no such page in PAGES: ${unknown.join(', ')}`);
  if (PAGES.length === 0) {
    console.error('screenshots: PAGES in tests/web/screenshots.mjs lists no pages yet');
    return;
  }
  if (!existsSync(bin())) throw new Error(`${bin()} is missing: build it with \`cargo build -p roundtable\``);
  await mkdir(OUT, { recursive: true });

  const home = await tempHome();
  const node = await up(home);
  let b;
  let ctx;
  try {
    b = await browser();
    // One logged-in context per size; every page is opened in both.
    const views = [];
    for (const [i, size] of SIZES.entries()) {
      // Each link lets one browser in, once.
      const { context, page, errors } = await openApp(b, i === 0 ? node.url : freshLink(node), {
        width: size.width,
        height: size.height,
        contextOptions: { colorScheme: 'light', reducedMotion: 'reduce', locale: 'en-US', ...size.contextOptions },
      });
      views.push({ size, context, page, errors });
    }
    ctx = {
      home,
      node,
      origin: node.origin,
      run: (args, opts) => run(home, args, opts),
      runJson: (args, opts) => runJson(home, args, opts),
    };
    for (const entry of PAGES) {
      const returned = entry.setup ? await entry.setup(ctx) : undefined;
      const where = typeof returned === 'string' ? returned : entry.path;
      if (typeof where !== 'string') throw new Error(`page ${entry.name}: no path, and its setup returned none`);
      if (only.length && !only.includes(entry.name)) continue;
      for (const { size, page, errors } of views) {
        errors.length = 0;
        const response = await page.goto(new URL(where, node.origin).href, { waitUntil: 'load', timeout: 20_000 });
        if (response && response.status() >= 400) {
          throw new Error(`page ${entry.name}: ${where} answered ${response.status()}`);
        }
        if (entry.act) await entry.act(page);
        const file = path.join(OUT, `${entry.name}-${size.suffix}.png`);
        await page.screenshot({ path: file, fullPage: true, animations: 'disabled', caret: 'hide', timeout: 30_000 });
        console.log(`wrote ${path.relative(repoRoot, file)}`);
        if (errors.length) console.error(`  warning: ${entry.name} (${size.suffix}) logged errors:\n  ${errors.join('\n  ')}`);
      }
    }
  } finally {
    if (b) await closeBrowser(b).catch((e) => console.error(`screenshots: ${e.message}`));
    for (const f of ctx?.keep ?? []) await stop(f.node);
    const stopped = await stop(node);
    if (stopped.code !== 0) {
      console.error(`screenshots: the node did not stop cleanly (${JSON.stringify(stopped)}):\n${node.stderr()}`);
    }
  }
}

try {
  await main();
} catch (e) {
  console.error(`screenshots: ${e.stack ?? e}`);
  process.exitCode = 1;
}
