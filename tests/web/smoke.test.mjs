// The harness itself, without Roundtable's web app: a tiny local server and a
// stand-in for the `roundtable` binary prove that the browser starts, forms
// are filled in and sent, axe-core passes a good page and fails a bad one,
// raw requests carry the headers given, and `up`/`stop`/`run` handle nodes.

import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  assertNoSeriousA11y,
  axe,
  browser,
  closeBrowser,
  cookieOf,
  openApp,
  rawRequest,
  run,
  runJson,
  stop,
  tempHome,
  up,
  waitFor,
} from './harness.mjs';

const page = (title, body) => `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${title}</title></head>
<body><main>${body}</main></body>
</html>`;

const PAGES = {
  '/': page('Say hello', `
    <h1>Say hello</h1>
    <form method="post" action="/hello">
      <label for="name">Your name</label>
      <input id="name" name="name" autocomplete="name" required>
      <button type="submit">Send</button>
    </form>`),
  '/thanks': page('Thanks', '<h1>Thanks</h1><p>We got it.</p>'),
  '/broken': `<!doctype html><html><head><title>Broken</title></head><body>
    <input name="nameless">
    <img src="/nothing.png">
    <p style="color:#eee;background:#fff">Hard to read</p>
    </body></html>`,
  '/csp': page('Strict', '<h1>Strict</h1><p>No inline scripts here.</p>'),
};

const seen = []; // {method, url, host, origin, cookie}
const posted = []; // bodies of POST /hello
let server;
let origin;
let b;

function handler(req, res) {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    const url = new URL(req.url, 'http://placeholder');
    seen.push({ method: req.method, url: req.url, host: req.headers.host, origin: req.headers.origin, cookie: req.headers.cookie, body });
    if (req.method === 'POST' && url.pathname === '/hello') {
      posted.push(body);
      res.writeHead(303, { Location: '/thanks' }).end();
    } else if (url.pathname === '/login') {
      if (url.searchParams.get('token') !== 'let-me-in') {
        res.writeHead(403, { 'Content-Type': 'text/plain' }).end('bad token');
        return;
      }
      res.writeHead(303, { Location: '/', 'Set-Cookie': 'rt_session=s3cret; HttpOnly; SameSite=Strict; Path=/' }).end();
    } else if (req.method === 'GET' && PAGES[url.pathname]) {
      const headers = { 'Content-Type': 'text/html; charset=utf-8' };
      if (url.pathname === '/csp') headers['Content-Security-Policy'] = "default-src 'none'; img-src data:";
      res.writeHead(200, headers).end(PAGES[url.pathname]);
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
    }
  });
}

/** A stand-in for the roundtable binary (see FAKE_MODE below). */
async function fakeBinary() {
  const dir = await tempHome();
  const file = path.join(dir, 'fake-roundtable');
  await writeFile(file, `#!${process.execPath}
const args = process.argv.slice(2);
const mode = process.env.FAKE_MODE ?? 'ok';
const report = { args, config: process.env.ROUNDTABLE_CONFIG };
if (!args.includes('up')) {
  process.stdout.write(JSON.stringify(report, null, 2) + '\\n');
  process.exit(Number(process.env.FAKE_CODE ?? 0));
}
if (mode === 'fail') {
  process.stderr.write('error: boom\\n');
  process.exit(1);
}
process.stderr.write('fake node starting\\n');
process.on('SIGTERM', () => { if (mode !== 'stubborn') process.exit(0); });
setInterval(() => {}, 1000);
if (mode !== 'silent') {
  // Pretty-printed, a line at a time, as a slow node might.
  const lines = JSON.stringify({ ...report, web: process.env.FAKE_WEB }, null, 2).split('\\n');
  lines.forEach((line, i) => setTimeout(() => process.stdout.write(line + '\\n'), 20 * i));
}
`);
  await chmod(file, 0o755);
  return file;
}

before(async () => {
  // Node's server answers 400 to HTTP/1.1 without Host unless told not to.
  server = http.createServer({ requireHostHeader: false }, handler);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  origin = `http://127.0.0.1:${server.address().port}`;
  b = await browser();
});

after(async () => {
  if (b) await closeBrowser(b);
  server?.closeAllConnections();
  server?.close();
});

test('the browser fills in a form and sends it', async () => {
  const { context, page: p, errors } = await openApp(b, `${origin}/`);
  try {
    assert.equal(await p.title(), 'Say hello');
    await assertNoSeriousA11y(p, 'the form');
    await p.getByLabel('Your name').fill('Ada Lovelace');
    await Promise.all([p.waitForURL(`${origin}/thanks`), p.getByRole('button', { name: 'Send' }).click()]);
    await p.getByRole('heading', { name: 'Thanks' }).waitFor();
    assert.deepEqual(posted, ['name=Ada+Lovelace']);
    await assertNoSeriousA11y(p, 'the thanks page');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('axe reports what is wrong with a broken page', async () => {
  const { context, page: p } = await openApp(b, `${origin}/broken`);
  try {
    const violations = await axe(p);
    const ids = violations.map((v) => v.id);
    for (const id of ['label', 'image-alt', 'color-contrast', 'html-has-lang']) {
      assert.ok(ids.includes(id), `axe should report ${id}; it reported ${JSON.stringify(violations, null, 2)}`);
    }
    const label = violations.find((v) => v.id === 'label');
    assert.equal(label.impact, 'critical');
    assert.match(label.nodes[0], /<input name="nameless">/);
    await assert.rejects(assertNoSeriousA11y(p, 'the broken page'), (e) => {
      assert.match(e.message, /the broken page .*serious or critical accessibility violation/);
      assert.match(e.message, /\[critical\] image-alt/);
      assert.ok(e.violations.length >= 4);
      return true;
    });
  } finally {
    await context.close();
  }
});

test('axe runs under a strict Content-Security-Policy', async () => {
  const { context, page: p, errors } = await openApp(b, `${origin}/csp`);
  try {
    assert.deepEqual(await axe(p), []);
    assert.deepEqual(await axe(p), [], 'a second run reuses the injected axe');
    assert.deepEqual(errors, [], 'injecting axe is not an error of the page');
  } finally {
    await context.close();
  }
});

test('rawRequest sends exactly the headers it is given', async () => {
  const r = await rawRequest({ origin, path: '/', headers: { Host: 'evil.example:1234' } });
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /text\/html/);
  assert.match(r.body, /Say hello/);
  assert.equal(seen.at(-1).host, 'evil.example:1234');

  const none = await rawRequest({ origin, path: '/thanks' });
  assert.equal(none.status, 200);
  assert.equal(seen.at(-1).host, undefined);

  const before = posted.length;
  const post = await rawRequest({
    origin,
    path: '/hello',
    method: 'POST',
    headers: { Host: '127.0.0.1', Origin: 'http://evil.example', Cookie: 'rt_session=forged' },
    body: new URLSearchParams({ name: 'Mallory' }),
  });
  assert.equal(post.status, 303);
  assert.equal(post.headers.location, '/thanks');
  assert.equal(posted.length, before + 1);
  assert.deepEqual(
    { ...seen.at(-1) },
    { method: 'POST', url: '/hello', host: '127.0.0.1', origin: 'http://evil.example', cookie: 'rt_session=forged', body: 'name=Mallory' },
  );
});

test('up starts a node, openApp logs in, cookieOf reads the session, stop stops it', async () => {
  const home = await tempHome();
  const fake = await fakeBinary();
  const node = await up(home, ['--extra'], { bin: fake, env: { FAKE_WEB: `${origin}/login?token=let-me-in` } });
  try {
    assert.equal(node.url, `${origin}/login?token=let-me-in`);
    assert.equal(node.origin, origin);
    assert.deepEqual(node.info.args, [
      '--home', home, '--json', 'up', '--listen', '127.0.0.1:0', '--relay', 'none', '--no-mdns',
      '--web', '127.0.0.1:0', '--no-browser', '--extra',
    ]);
    assert.equal(node.info.config, path.join(home, 'config.toml'));
    await waitFor(() => node.stderr().includes('fake node starting'), { timeout: 5_000, what: 'the node\'s stderr' });

    const { context, page: p } = await openApp(b, node.url, { width: 360, height: 740 });
    try {
      assert.equal(p.url(), `${origin}/`);
      assert.deepEqual(p.viewportSize(), { width: 360, height: 740 });
      const cookie = await cookieOf(context, origin);
      assert.equal(cookie, 's3cret');
      assert.equal(await cookieOf(context, origin, 'other'), null);
      await rawRequest({ origin, path: '/', headers: { Host: new URL(origin).host, Cookie: `rt_session=${cookie}` } });
      assert.equal(seen.at(-1).cookie, 'rt_session=s3cret');
    } finally {
      await context.close();
    }
  } finally {
    assert.deepEqual(await stop(node), { code: 0, signal: null, forced: false });
  }
  // Stopping twice is harmless.
  assert.equal((await stop(node)).code, 0);
});

test('up fails clearly when the node dies or stays silent', async () => {
  const home = await tempHome();
  const fake = await fakeBinary();
  await assert.rejects(up(home, [], { bin: fake, env: { FAKE_MODE: 'fail' } }), /exited \(code 1\) before printing its JSON[^]*error: boom/);
  await assert.rejects(up(home, [], { bin: fake, env: { FAKE_MODE: 'silent' }, timeout: 1_000 }), /timed out after 1000 ms: roundtable up printing its JSON[^]*fake node starting/);
  await assert.rejects(up(home, [], { bin: fake, env: { FAKE_WEB: '' } }), /printed no "web" URL/);
  await assert.rejects(up(home, [], { bin: path.join(home, 'missing') }), /did not start/);
});

test('stop kills a node that ignores SIGTERM', async () => {
  const home = await tempHome();
  const fake = await fakeBinary();
  const node = await up(home, [], { bin: fake, env: { FAKE_MODE: 'stubborn', FAKE_WEB: `${origin}/` } });
  assert.deepEqual(await stop(node, { grace: 300 }), { code: null, signal: 'SIGKILL', forced: true });
});

test('run and runJson pass --home and the home\'s own config', async () => {
  const home = await tempHome();
  const fake = await fakeBinary();
  const r = run(home, ['status', '--json'], { bin: fake });
  assert.equal(r.code, 0);
  assert.deepEqual(JSON.parse(r.stdout), { args: ['--home', home, 'status', '--json'], config: path.join(home, 'config.toml') });
  assert.deepEqual(runJson(home, ['status', '--json'], { bin: fake }).args, ['--home', home, 'status', '--json']);
  assert.equal(run(home, ['x'], { bin: fake, env: { FAKE_CODE: '2' } }).code, 2);
  assert.throws(() => runJson(home, ['x'], { bin: fake, env: { FAKE_CODE: '2' } }), /exited 2/);
});

test('waitFor returns what it waited for, or says what it waited for', async () => {
  let n = 0;
  assert.equal(await waitFor(async () => (++n >= 3 ? 'ready' : false), { interval: 10, what: 'three calls' }), 'ready');
  await assert.rejects(waitFor(() => false, { timeout: 200, interval: 20, what: 'Godot' }), /^Error: timed out waiting for Godot$/);
  await assert.rejects(
    waitFor(() => { throw new Error('still broken'); }, { timeout: 200, interval: 20, what: 'repair' }),
    /timed out waiting for repair \(last error: still broken\)/,
  );
  await assert.rejects(waitFor(() => new Promise(() => {}), { timeout: 200, what: 'a hung check' }), /timed out waiting for a hung check/);
});
