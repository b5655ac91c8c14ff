// Helpers for Roundtable's browser end-to-end tests (`node --test`, run by
// tests/tests/browser.rs): real `roundtable up --web` nodes in temporary
// homes, Debian's chromium driven by playwright-core (it never downloads a
// browser), axe-core accessibility checks, and raw HTTP requests.
//
// Every await here that could hang is bounded by a timeout, and every process
// this module starts is killed when the test process exits, however it exits.

import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The repository's root directory. */
export const repoRoot = path.resolve(here, '..', '..');

/** The name of the web app's session cookie. */
export const SESSION_COOKIE = 'rt_session';

/** Chromium's flags: headless, no sandbox (CI runs as root), nothing phoning home. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Containers often give /dev/shm only 64 MB; chromium then crashes.
  '--disable-dev-shm-usage',
];

/** The chromium binary: env `CHROMIUM`, else Debian's /usr/bin/chromium. */
export function chromiumPath() {
  return process.env.CHROMIUM || '/usr/bin/chromium';
}

// ---------------------------------------------------------------------------
// Timeouts and clean-up

/** Resolves like `promise`, or rejects after `ms` with `timed out after … ms: what`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Processes started here and still running: killed at exit. */
const live = new Set();
/** Temporary directories made here: removed at exit. */
const temps = new Set();

function killAll() {
  for (const proc of live) {
    try {
      proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

function removeTemps() {
  for (const dir of temps) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
    } catch {
      // best effort
    }
  }
  temps.clear();
}

// Clean up however the process ends: 'exit' (a normal end, process.exit,
// --test-force-exit), a crash (Node emits no 'exit' then; the monitor sees
// the error before the crash, and does nothing when a handler such as
// node:test's will catch it and carry on), and signals.
process.on('exit', () => {
  killAll();
  removeTemps();
});
process.on('uncaughtExceptionMonitor', () => {
  if (process.listenerCount('uncaughtException') === 0) {
    killAll();
    removeTemps();
  }
});
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.on(signal, () => {
    killAll();
    removeTemps();
    // node:test and Playwright may listen too (node:test reports the
    // cancelled test, then exits); if nobody exits, exit as the signal would.
    if (process.listenerCount(signal) === 1) process.exit(code);
    else setTimeout(() => process.exit(code), 1_000);
  });
}

// ---------------------------------------------------------------------------
// The roundtable binary

/** The roundtable binary: env `ROUNDTABLE_BIN`, else `<repo>/target/debug/roundtable`. */
export function bin() {
  if (process.env.ROUNDTABLE_BIN) return process.env.ROUNDTABLE_BIN;
  const exe = process.platform === 'win32' ? 'roundtable.exe' : 'roundtable';
  return path.join(repoRoot, 'target', 'debug', exe);
}

/** A fresh temporary directory for one device's home, removed at exit. */
export async function tempHome() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rt-web-'));
  temps.add(dir);
  return dir;
}

/** The environment of a run in `home`: its own config file only, never the user's. */
function homeEnv(home, env = {}) {
  return { ...process.env, ROUNDTABLE_CONFIG: path.join(home, 'config.toml'), ...env };
}

/**
 * Runs `roundtable --home HOME ...args` synchronously (no stdin, at most
 * `timeout` ms). Returns `{code, stdout, stderr}`; `code` is -1 if a signal
 * ended it.
 */
export function run(home, args, { env = {}, timeout = 60_000, bin: exe = bin() } = {}) {
  const r = spawnSync(exe, ['--home', home, ...args], {
    env: homeEnv(home, env),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout,
    killSignal: 'SIGKILL',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) {
    const why = r.error.code === 'ETIMEDOUT' ? `did not finish within ${timeout} ms` : r.error.message;
    throw new Error(`roundtable ${args.join(' ')}: ${why}\nstdout:\n${r.stdout ?? ''}\nstderr:\n${r.stderr ?? ''}`);
  }
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Runs like `run` (`args` should include `--json`) and returns stdout parsed
 * as JSON; throws with everything printed unless it exits 0 with JSON.
 */
export function runJson(home, args, opts = {}) {
  const r = run(home, args, opts);
  const context = `roundtable ${args.join(' ')} exited ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  if (r.code !== 0) throw new Error(context);
  try {
    return JSON.parse(r.stdout);
  } catch (e) {
    throw new Error(`stdout is not JSON (${e.message}): ${context}`);
  }
}

/** Keeps the last `max` characters of a growing log. */
function tail(s, max = 64 * 1024) {
  return s.length > max ? s.slice(s.length - max) : s;
}

/**
 * Starts `roundtable --home HOME --json up --listen 127.0.0.1:0 --relay none
 * --no-mdns --web 127.0.0.1:0 --no-browser ...extraArgs` and waits (at most
 * `timeout` ms) for the JSON it prints first, whose `web` is the login URL.
 * `web` is where the app listens (`--web`).
 *
 * Returns `{proc, url, origin, info, home, stderr()}`: `url` is e.g.
 * `http://LABEL.localhost:PORT/login?token=ONCE` (a one-time link: get
 * another with `freshLink(node)`), `origin` `http://LABEL.localhost:PORT`,
 * `info` the whole JSON, and `stderr()` what the node has printed there.
 * Stop it with `stop(node)`.
 */
export async function up(home, extraArgs = [], { env = {}, timeout = 30_000, bin: exe = bin(), web = '127.0.0.1:0' } = {}) {
  const args = [
    '--home', home, '--json',
    'up', '--listen', '127.0.0.1:0', '--relay', 'none', '--no-mdns',
    '--web', web, '--no-browser',
    ...extraArgs,
  ];
  const proc = spawn(exe, args, { env: homeEnv(home, env), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));

  // Keep reading both pipes for the node's whole life: a full pipe would block it.
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => {
    stderr = tail(stderr + chunk);
    if (process.env.ROUNDTABLE_E2E_VERBOSE) process.stderr.write(chunk);
  });
  const node = { proc, home, stderr: () => stderr, stdout: () => stdout };

  let info;
  try {
    info = await withTimeout(
      new Promise((resolve, reject) => {
        let pending = '';
        let done = false;
        proc.stdout.on('data', (chunk) => {
          stdout = tail(stdout + chunk);
          if (done) return;
          pending += chunk;
          // The JSON may be one line or pretty-printed over several: try to
          // parse what has come so far at the end of every line.
          if (!chunk.includes('\n')) return;
          const text = pending.slice(0, pending.lastIndexOf('\n')).trim();
          if (!text) return;
          try {
            const value = JSON.parse(text);
            done = true;
            resolve(value);
          } catch {
            // not complete yet
          }
        });
        proc.once('error', (e) => reject(new Error(`roundtable up did not start (${exe}): ${e.message}`)));
        // 'close', not 'exit': by then all of stdout has been read.
        proc.once('close', (code, signal) => {
          if (done) return;
          reject(new Error(
            `roundtable up exited (${signal ?? `code ${code}`}) before printing its JSON\n` +
            `stdout:\n${stdout}\nstderr:\n${stderr}`,
          ));
        });
      }),
      timeout,
      'roundtable up printing its JSON',
    );
  } catch (e) {
    await stop(node, { grace: 2_000 });
    throw new Error(`${e.message}\nstderr so far:\n${stderr}`, { cause: e });
  }
  let origin;
  try {
    origin = new URL(info?.web).origin;
  } catch {
    await stop(node, { grace: 5_000 });
    throw new Error(`roundtable up --json printed no "web" URL:\n${JSON.stringify(info, null, 2)}\nstderr:\n${stderr}`);
  }
  // A node a test forgets to stop must not keep this process alive: it is
  // killed at exit.
  proc.unref();
  proc.stdout.unref();
  proc.stderr.unref();
  return Object.assign(node, { url: info.web, origin, info });
}

/**
 * A fresh one-time login link from a running node (`roundtable web`).
 */
export function freshLink(node) {
  return runJson(node.home, ['--json', 'web']).web;
}

/**
 * Stops a node from `up` (or any child process): SIGTERM, up to `grace` ms
 * to exit, then SIGKILL. Resolves `{code, signal, forced}`; a clean stop is
 * `{code: 0, signal: null, forced: false}`.
 */
export async function stop(node, { grace = 15_000 } = {}) {
  const proc = node.proc ?? node;
  const exited = () => proc.exitCode !== null || proc.signalCode !== null;
  const result = (forced) => ({ code: proc.exitCode, signal: proc.signalCode, forced });
  const waitExit = (ms) =>
    exited()
      ? Promise.resolve(true)
      : new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), ms);
        proc.once('exit', () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
  if (exited() || proc.pid === undefined) {
    live.delete(proc);
    return result(false);
  }
  proc.kill('SIGTERM');
  let forced = false;
  if (!(await waitExit(grace))) {
    forced = true;
    proc.kill('SIGKILL');
    await waitExit(5_000);
  }
  live.delete(proc);
  return result(forced);
}

// ---------------------------------------------------------------------------
// The browser

/**
 * Launches chromium (headless, from `chromiumPath()`, never downloaded; a
 * fresh temporary profile each time). Returns the Playwright `Browser`;
 * close it with `closeBrowser` (it is killed at exit anyway).
 */
export async function browser({ timeout = 30_000 } = {}) {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: CHROMIUM_ARGS,
    timeout,
  });
}

/** Closes a browser (or context), bounded. */
export async function closeBrowser(b, { timeout = 15_000 } = {}) {
  await withTimeout(b.close(), timeout, 'closing the browser');
}

/**
 * A new browser context (viewport `width`x`height`, default 1280x800; use
 * 360x740 for a phone) and a page that has gone to `url` (the login URL of
 * `up`, which sets the session cookie and redirects to `/`).
 *
 * Returns `{context, page, errors}`; `errors` collects the page's uncaught
 * exceptions and console errors as strings. `contextOptions` go to
 * `browser.newContext`.
 */
export async function openApp(b, url, { width = 1280, height = 800, timeout = 20_000, contextOptions = {} } = {}) {
  const context = await withTimeout(
    b.newContext({ viewport: { width, height }, ...contextOptions }),
    timeout,
    'a new browser context',
  );
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(timeout);
  const page = await withTimeout(context.newPage(), timeout, 'a new page');
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // `axe` injecting itself into a page whose CSP forbids inline scripts is
    // not the page's error.
    if (injecting.has(page) && m.text().includes('Content Security Policy')) return;
    errors.push(`console: ${m.text()}`);
  });
  const response = await page.goto(url, { waitUntil: 'load', timeout });
  if (response && response.status() >= 400) {
    const body = await withTimeout(response.text(), 5_000, 'the error page').catch(() => '');
    throw new Error(`${url} answered ${response.status()} (now at ${page.url()}):\n${body.slice(0, 2000)}`);
  }
  // The app's login page sends the browser on by itself.
  if (new URL(page.url()).pathname === '/login') {
    await page.waitForURL((u) => u.pathname !== '/login', { timeout, waitUntil: 'load' });
  }
  return { context, page, errors };
}

/**
 * The value of the app's session cookie (`rt_session`, or `name`) for
 * `origin` in a Playwright context, or null if there is none.
 */
export async function cookieOf(context, origin, name = SESSION_COOKIE) {
  const cookies = await withTimeout(context.cookies(origin), 10_000, 'the cookies');
  return cookies.find((c) => c.name === name)?.value ?? null;
}

// ---------------------------------------------------------------------------
// Accessibility

const require = createRequire(import.meta.url);
let axeSource;
/** Pages `axe` is injecting itself into. */
const injecting = new WeakSet();

/**
 * Runs axe-core in the page and returns its serious and critical violations,
 * each `{id, impact, help, helpUrl, count, nodes}` where `nodes` is the first
 * three offending elements as `selector: <html snippet>`.
 */
export async function axe(page, { timeout = 30_000, context, options = {} } = {}) {
  axeSource ??= readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  const present = () => withTimeout(page.evaluate(() => typeof window.axe?.run === 'function'), timeout, 'axe-core check');
  if (!(await present())) {
    injecting.add(page);
    try {
      try {
        await withTimeout(page.addScriptTag({ content: axeSource }), timeout, 'injecting axe-core');
      } catch {
        // A Content-Security-Policy without 'unsafe-inline' blocks the script
        // tag; evaluating through the DevTools protocol is not subject to it.
      }
      if (!(await present())) {
        await withTimeout(page.evaluate(axeSource), timeout, 'evaluating axe-core');
      }
      if (!(await present())) throw new Error('axe-core could not be loaded into the page');
    } finally {
      // The console message of a blocked script may come a moment later.
      setTimeout(() => injecting.delete(page), 1_000).unref();
    }
  }
  const violations = await withTimeout(
    page.evaluate(
      ([ctx, opts]) => window.axe.run(ctx ?? document, { resultTypes: ['violations'], ...opts }).then((r) => r.violations),
      [context ?? null, options],
    ),
    timeout,
    'axe.run()',
  );
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      count: v.nodes.length,
      nodes: v.nodes.slice(0, 3).map((n) => `${n.target.join(' ')}: ${n.html.length > 200 ? `${n.html.slice(0, 200)}…` : n.html}`),
    }));
}

/** A readable list of `axe` violations. */
export function formatViolations(violations) {
  return violations
    .map((v) => `- [${v.impact}] ${v.id}: ${v.help} (${v.count} element${v.count === 1 ? '' : 's'}; ${v.helpUrl})\n` +
      v.nodes.map((n) => `    ${n}`).join('\n'))
    .join('\n');
}

/** Throws, listing them, if axe finds serious or critical violations in the page. */
export async function assertNoSeriousA11y(page, label, opts = {}) {
  const violations = await axe(page, opts);
  if (violations.length > 0) {
    const err = new Error(
      `${label} (${page.url()}): ${violations.length} serious or critical accessibility violation(s):\n${formatViolations(violations)}`,
    );
    err.violations = violations;
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Raw HTTP

/**
 * One HTTP/1.1 request to the server at `origin` (a `*.localhost` name is
 * reached at 127.0.0.1, as browsers do) with exactly `headers`
 * (Node adds no Host: pass one, a wrong one, or none; it does add
 * `Connection: close`, and `Content-Length` for a `body` if none is given).
 * `body` is a string, Buffer, or URLSearchParams (which also sets an
 * urlencoded Content-Type if none is given). Does not follow redirects.
 * Resolves `{status, headers, body}` (headers lower-cased, body a string).
 */
export function rawRequest({ origin, path: reqPath = '/', method = 'GET', headers = {}, body, timeout = 10_000 }) {
  const target = new URL(origin);
  const given = new Set(Object.keys(headers).map((h) => h.toLowerCase()));
  const sendHeaders = { ...headers };
  let payload = body;
  if (payload instanceof URLSearchParams) {
    payload = payload.toString();
    if (!given.has('content-type')) sendHeaders['Content-Type'] = 'application/x-www-form-urlencoded';
  }
  if (payload !== undefined && !given.has('content-length') && !given.has('transfer-encoding')) {
    sendHeaders['Content-Length'] = Buffer.byteLength(payload);
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: target.hostname.endsWith('.localhost') ? '127.0.0.1' : target.hostname.replace(/^\[|\]$/g, ''),
        port: target.port || 80,
        method,
        path: reqPath,
        headers: sendHeaders,
        setHost: false,
        agent: false,
        timeout,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`rawRequest ${method} ${reqPath}: no answer within ${timeout} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

// ---------------------------------------------------------------------------
// Waiting

/**
 * Polls `fn` (sync or async) every `interval` ms until it returns something
 * truthy, and returns that; throws `timed out waiting for ${what}` (with the
 * last error `fn` threw, if any) after `timeout` ms.
 */
export async function waitFor(fn, { timeout = 20_000, interval = 100, what = 'a condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastError;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      const value = await withTimeout(fn(), left, what);
      if (value) return value;
      lastError = undefined;
    } catch (e) {
      lastError = e;
    }
    const wait = Math.min(interval, deadline - Date.now());
    if (wait <= 0) break;
    await sleep(wait);
  }
  throw new Error(`timed out waiting for ${what}${lastError ? ` (last error: ${lastError.message})` : ''}`);
}

// --- What the browser tests share ---

/** Waits until `text` (a string or a RegExp) shows in the page, without a
 * reload; says what it waited for, and on which page, when it never does. */
export async function shows(page, text, what = text) {
  await page.getByText(text).first().waitFor({ state: 'visible', timeout: 30_000 }).catch((e) => {
    throw new Error(`timed out waiting for "${what}" on ${page.url()}: ${e.message}`);
  });
}

/** The form a page labels `name`. */
export function form(page, name) {
  return page.getByRole('form', { name });
}

/** Marks the page, so a reload would show (the mark would be gone). */
export async function mark(page) {
  await page.evaluate(() => { window.__noReload = true; });
}

/** Fails if the page reloaded since `mark`. */
export async function stillSamePage(page) {
  if (!(await page.evaluate(() => window.__noReload === true))) {
    throw new Error(`the page reloaded: ${page.url()}`);
  }
}

/** Runs a command that must succeed; returns what it printed. */
export function ok(home, args, opts) {
  const r = run(home, args, opts);
  if (r.code !== 0) {
    throw new Error(`roundtable ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

/** The ticket a command printed: its first line starting "roundtable". */
export function ticketOf(out) {
  const line = out.split('\n').map((l) => l.trim()).find((l) => l.startsWith('roundtable'));
  if (!line) throw new Error(`no ticket in:\n${out}`);
  return line;
}
