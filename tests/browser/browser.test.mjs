// Headless-Chromium test of the Snakepit browser client against the real gateway.
//
//   cargo build -p snakepit-gateway -p snakepit-room-worker
//   cd tests/browser && npm install && npm test
//
// Environment:
//   SNAKEPIT_GATEWAY_BIN  gateway binary (default ../../target/debug/gateway from this file)
//   SNAKEPIT_WORKER_BIN   room-worker binary (default ../../target/debug/room-worker)
//   REDIS_SERVER          redis-server executable (default redis-server on the PATH)
//   CHROMIUM              Chromium executable (default /usr/bin/chromium)
//   ARTIFACTS             where browser.png goes (default ../../artifacts from this file)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const GATEWAY_BIN = process.env.SNAKEPIT_GATEWAY_BIN
  ? path.resolve(process.env.SNAKEPIT_GATEWAY_BIN)
  : path.resolve(HERE, '../../target/debug/gateway');
const WORKER_BIN = process.env.SNAKEPIT_WORKER_BIN
  ? path.resolve(process.env.SNAKEPIT_WORKER_BIN)
  : path.resolve(HERE, '../../target/debug/room-worker');
const REDIS_SERVER = process.env.REDIS_SERVER || 'redis-server';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.ARTIFACTS
  ? path.resolve(process.env.ARTIFACTS)
  : path.resolve(HERE, '../../artifacts');

const WAIT = { timeout: 10_000, polling: 50 };
const ARROWS = {
  ArrowLeft: { dx: -1, dy: 0 },
  ArrowUp: { dx: 0, dy: -1 },
  ArrowRight: { dx: 1, dy: 0 },
  ArrowDown: { dx: 0, dy: 1 },
};

let gateway = null;
let dataDir = null;
let gatewayLog = '';
let baseUrl = null;
let browser = null;
const pageErrors = [];

function logTail() {
  return gatewayLog.length > 4000 ? '...' + gatewayLog.slice(-4000) : gatewayLog;
}

function startGateway() {
  if (!fs.existsSync(GATEWAY_BIN)) {
    throw new Error(`gateway binary not found: ${GATEWAY_BIN} (build it or set SNAKEPIT_GATEWAY_BIN)`);
  }
  return new Promise((resolve, reject) => {
    // Its top scores go to a temporary folder, never the user's.
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'snakepit-browser-'));
    const child = spawn(GATEWAY_BIN, ['--listen', '127.0.0.1:0', '--data-dir', dataDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: process.env,
    });
    gateway = child;
    let ready = false;
    const timer = setTimeout(() => {
      if (!ready) reject(new Error(`gateway did not print "listening on ..." within 10 s\n${logTail()}`));
    }, 10_000);
    const keep = (chunk) => {
      gatewayLog += chunk;
      if (gatewayLog.length > 100_000) gatewayLog = gatewayLog.slice(-50_000);
    };
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', keep);
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      keep(line + '\n');
      const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)\s*$/.exec(line);
      if (m && !ready) {
        ready = true;
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start gateway ${GATEWAY_BIN}: ${e.message}`));
    });
    child.on('exit', (code, signal) => {
      if (!ready) {
        clearTimeout(timer);
        reject(new Error(`gateway exited early (code ${code}, signal ${signal})\n${logTail()}`));
      }
    });
  });
}

async function stopGateway() {
  const child = gateway;
  gateway = null;
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  }
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  dataDir = null;
}

// Processes of the cluster test, killed if the test run ends early.
const spawned = new Set();

process.on('exit', () => {
  if (gateway && gateway.exitCode === null) gateway.kill('SIGKILL');
  for (const child of spawned) if (child.exitCode === null) child.kill('SIGKILL');
});

// A free TCP port on 127.0.0.1 (free when asked; nothing holds it after).
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Starts `bin` and resolves with { child, url, log } once it prints
// "listening on http://...".
function startServer(label, bin, args) {
  if (!fs.existsSync(bin)) {
    throw new Error(`${label} binary not found: ${bin} (cargo build -p snakepit-gateway -p snakepit-room-worker)`);
  }
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    spawned.add(child);
    const out = { child, url: null, log: '' };
    const keep = (chunk) => { out.log = (out.log + chunk).slice(-20_000); };
    const timer = setTimeout(() => reject(new Error(`${label} did not start within 15 s\n${out.log}`)), 15_000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', keep);
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      keep(line + '\n');
      const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)\s*$/.exec(line);
      if (m && !out.url) {
        out.url = m[1];
        clearTimeout(timer);
        resolve(out);
      }
    });
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start ${label}: ${e.message}`)); });
    child.on('exit', (code, signal) => {
      spawned.delete(child);
      if (!out.url) {
        clearTimeout(timer);
        reject(new Error(`${label} exited early (code ${code}, signal ${signal})\n${out.log}`));
      }
    });
  });
}

// SIGTERM, and resolves once the process is gone (SIGKILL after `ms`).
async function stopChild(child, ms = 30_000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), ms);
  await exited;
  clearTimeout(t);
}

// A redis-server of our own on a free port, answering PING.
async function startRedis() {
  const port = await freePort();
  const child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' });
  spawned.add(child);
  child.on('exit', () => spawned.delete(child));
  for (let i = 0; i < 100; i++) {
    const pong = await new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1', () => sock.write('PING\r\n'));
      sock.setEncoding('utf8');
      sock.once('data', (d) => { sock.destroy(); resolve(d.startsWith('+PONG')); });
      sock.once('error', () => resolve(false));
    });
    if (pong) return { child, url: `redis://127.0.0.1:${port}/` };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`${REDIS_SERVER} did not answer on port ${port}`);
}

// The flags of a binary's --help that are listed in `wanted`.
function knownFlags(bin, wanted) {
  return new Promise((resolve) => {
    const child = spawn(bin, ['--help'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let text = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => { text += d; });
    child.on('close', () => resolve(wanted.filter(([flag]) => text.includes(flag)).flat()));
    child.on('error', () => resolve([]));
  });
}

before(async () => {
  baseUrl = await startGateway();
  if (!fs.existsSync(CHROMIUM)) throw new Error(`Chromium not found: ${CHROMIUM} (set CHROMIUM)`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
    ],
  });
}, { timeout: 20_000 });

after(async () => {
  try {
    if (browser) await browser.close();
  } finally {
    browser = null;
    await stopGateway();
  }
});

// ---- helpers -----------------------------------------------------------------

// Installed in every page before its scripts: where is player `id`'s snake?
// Returns { head: {x, y}, dir: {dx, dy} } (dir from the neck to the head), or
// null while it is not on the grid, or { dead: true } once the player is not
// alive any more.
function pageHelpers() {
  window.__snakeOf = (id) => {
    const s = window.snakepit;
    const p = s && s.players[id];
    if (!p || !p.alive) return p ? { dead: true } : null;
    let head = null;
    for (let y = 0; y < s.height && !head; y++) {
      for (let x = 0; x < s.width; x++) {
        const c = s.grid[y][x];
        if (c[0] === '%' && c[1] === p.colour) { head = { x, y }; break; }
      }
    }
    if (!head) return null;
    let dir = null;
    for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
      const c = (s.grid[head.y - dy] || [])[head.x - dx];
      if (c && (c[0] === '@' || c[0] === '*') && c[1] === p.colour) { dir = { dx, dy }; break; }
    }
    return { head, dir };
  };
}

async function newPage(context, label) {
  await context.addInitScript(pageHelpers);
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${label}: ${e.message}`));
  return page;
}

// The client's state, for failure messages.
async function dump(page) {
  return page.evaluate(() => {
    const s = window.snakepit;
    return JSON.stringify({
      connState: s.connState, playerId: s.playerId, name: s.name, roomId: s.roomId,
      alive: s.alive, tick: s.tick, players: s.players, status: s.status,
    });
  }).catch((e) => `(no state: ${e.message})`);
}

async function waitFor(page, what, fn, arg, options = WAIT) {
  try {
    return await (await page.waitForFunction(fn, arg, options)).jsonValue();
  } catch (e) {
    throw new Error(`waiting for ${what}: ${e.message.split('\n')[0]}\nclient state: ${await dump(page)}`);
  }
}

// Opens the page, enters a name, clicks Connect and waits for the handshake.
async function connectAs(page, name, query = '') {
  await page.goto(`${baseUrl}/${query}`);
  await waitFor(page, 'the client script', () => window.snakepit && window.snakepit.connState === 'disconnected');
  await page.fill('#name', name);
  await page.click('#connect');
  await waitFor(page, 'connected and handshake',
    () => window.snakepit.connState === 'connected' && window.snakepit.playerId != null);
  assert.equal(await page.textContent('#conn-state'), 'connected');
  assert.equal(await page.evaluate(() => window.snakepit.name), name);
  // Join shows once the room's world has arrived, before the first join.
  await waitFor(page, 'the Join button', () => !document.getElementById('join').hidden);
  return page.evaluate(() => window.snakepit.playerId);
}

// Clicks Join (the button shows while the snake is not alive) and waits until
// the client knows its snake is alive.
async function join(page) {
  await waitFor(page, 'the Join button', () => !document.getElementById('join').hidden);
  await page.click('#join');
  await waitFor(page, 'my snake alive', () => window.snakepit.alive === true, null, { timeout: 10_000, polling: 'raf' });
}

// ---- tests -----------------------------------------------------------------------

test('a player connects, joins, steers, and the field is drawn', { timeout: 20_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  try {
    const page = await newPage(context, 'solo');
    const id = await connectAs(page, 'solo-tester');
    assert.ok(await page.evaluate(() => window.snakepit.roomId), 'handshake gave a room');

    // The snake can die by bad luck (a wall or a stone right ahead): then join again.
    let turned = null;
    for (let attempt = 1; attempt <= 3 && !turned; attempt++) {
      await join(page);
      assert.ok(await page.isHidden('#join'), 'Join is hidden while the snake is alive');
      const before = await waitFor(page, 'my head and neck on the grid',
        (id) => window.__snakeOf(id), id, { timeout: 10_000, polling: 'raf' });
      if (before.dead) continue;
      assert.ok(before.dir, `the head has a neck: ${JSON.stringify(before)}`);
      const { width, height } = await page.evaluate(() => ({ width: window.snakepit.width, height: window.snakepit.height }));
      // Turn perpendicular to the current direction, towards the wider side.
      const key = before.dir.dx !== 0
        ? (before.head.y < height / 2 ? 'ArrowDown' : 'ArrowUp')
        : (before.head.x < width / 2 ? 'ArrowRight' : 'ArrowLeft');
      const want = ARROWS[key];
      await page.keyboard.press(key);
      const after = await waitFor(page, `the snake to go ${key}`,
        ({ id, from, want }) => {
          const s = window.__snakeOf(id);
          if (!s || s.dead) return s;
          if (s.head.x === from.x && s.head.y === from.y) return null;
          return s.dir && s.dir.dx === want.dx && s.dir.dy === want.dy ? s : null;
        },
        { id, from: before.head, want },
        { timeout: 5000, polling: 'raf' });
      if (after.dead) continue;
      assert.notDeepEqual(after.head, before.head, 'the head moved');
      assert.deepEqual(after.dir, want, `the last movement is ${key}`);
      turned = { before, key, after };
    }
    assert.ok(turned, 'the snake turned on one of 3 tries (it kept dying)');

    // The canvas is not blank: the snake's cells have lit pixels.
    const pixels = await page.evaluate((id) => {
      const s = window.snakepit;
      const colour = s.players[id] ? s.players[id].colour : -1;
      const canvas = document.querySelector('canvas');
      const cw = canvas.width / s.width;
      const ch = canvas.height / s.height;
      const g = canvas.getContext('2d');
      const litIn = (x, y) => {
        const img = g.getImageData(Math.floor(x * cw), Math.floor(y * ch), Math.ceil(cw), Math.ceil(ch)).data;
        let lit = 0;
        for (let i = 0; i < img.length; i += 4) if (img[i] + img[i + 1] + img[i + 2] > 60) lit++;
        return lit;
      };
      const cells = [];
      for (let y = 0; y < s.height; y++) {
        for (let x = 0; x < s.width; x++) {
          const c = s.grid[y][x];
          if ((c[0] === '%' || c[0] === 'x') && (c[1] === colour || c[0] === 'x')) cells.push({ x, y, ch: c[0], lit: litIn(x, y) });
        }
      }
      let blank = 0;
      for (let y = 0; y < s.height; y++) {
        for (let x = 0; x < s.width; x++) if (s.grid[y][x][0] === ' ' && litIn(x, y) > 0) blank++;
      }
      return { cells, litEmptyCells: blank };
    }, id);
    assert.ok(pixels.cells.length > 0, `a head on the grid: ${JSON.stringify(pixels)}`);
    assert.ok(pixels.cells.every((c) => c.lit > 0), `head cells are drawn: ${JSON.stringify(pixels)}`);
    assert.equal(pixels.litEmptyCells, 0, 'empty cells are black');

    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'browser.png'), fullPage: true });
    assert.deepEqual(pageErrors, []);
  } finally {
    await context.close();
  }
});

test('two players in one room see each other', { timeout: 20_000 }, async () => {
  const ctxA = await browser.newContext();
  const ctxB = await browser.newContext();
  try {
    const a = await newPage(ctxA, 'alice');
    const b = await newPage(ctxB, 'bob');
    const [idA, idB] = await Promise.all([
      connectAs(a, 'alice', '?room=browsertest'),
      connectAs(b, 'bob', '?room=browsertest'),
    ]);
    assert.notEqual(String(idA), String(idB));
    for (const page of [a, b]) {
      assert.equal(await page.evaluate(() => window.snakepit.roomId), 'browsertest');
      assert.match(await page.textContent('#room-name'), /browsertest/);
    }

    // Each page must see the other's name in its players list and the other's
    // head on its grid. A snake that dies early (bad luck) joins again.
    const views = [
      { page: a, other: idB, otherName: 'bob', seen: false },
      { page: b, other: idA, otherName: 'alice', seen: false },
    ];
    for (let attempt = 1; attempt <= 4 && !views.every((v) => v.seen); attempt++) {
      await Promise.all([a, b].map(async (page) => {
        if (!(await page.evaluate(() => window.snakepit.alive))) await join(page);
      }));
      await Promise.all(views.filter((v) => !v.seen).map(async (v) => {
        const got = await v.page.waitForFunction(
          ({ other, otherName }) => {
            const p = window.snakepit.players[other];
            const s = window.__snakeOf(other);
            if (s && s.dead) return 'dead';
            return p && p.name === otherName && s && s.head &&
              document.getElementById('players').textContent.includes(otherName) ? 'seen' : null;
          },
          { other: v.other, otherName: v.otherName },
          { timeout: 5000, polling: 'raf' },
        ).then((h) => h.jsonValue(), () => 'timeout');
        if (got === 'seen') v.seen = true;
      }));
    }
    for (const v of views) {
      assert.ok(v.seen, `${v.otherName} seen by the other page: ${await dump(v.page)}`);
    }

    // The room list knows the room.
    await a.click('#refresh-rooms');
    await waitFor(a, 'browsertest in the room list',
      () => window.snakepit.rooms.some((r) => r[0] === 'browsertest'));
    assert.deepEqual(pageErrors, []);
  } finally {
    await ctxA.close();
    await ctxB.close();
  }
});

// Robot snakes: a gateway with --robots 3 gives a lone
// player three robots (negative ids), which the players list marks with a
// "bot" badge; the player's own entry has none.
test('robot snakes are marked in the players list', { timeout: 30_000 }, async () => {
  const gw = await startServer('gateway (robots)', GATEWAY_BIN,
    ['--listen', '127.0.0.1:0', '--no-data-dir', '--robots', '3', '--tick-rate', '2']);
  const context = await browser.newContext();
  try {
    const page = await newPage(context, 'robots');
    await page.goto(`${gw.url}/?room=robottest`);
    await waitFor(page, 'the client script', () => window.snakepit && window.snakepit.connState === 'disconnected');
    await page.fill('#name', 'lonely');
    await page.click('#connect');
    await waitFor(page, 'connected and handshake',
      () => window.snakepit.connState === 'connected' && window.snakepit.playerId != null);
    const id = await page.evaluate(() => window.snakepit.playerId);
    await join(page);
    const list = await waitFor(page, 'three robots in the players list', () => {
      const items = [...document.querySelectorAll('#players li')];
      if (items.length !== 4) return null;
      return items.map((li) => ({
        id: li.dataset.id,
        me: li.classList.contains('me'),
        robot: li.classList.contains('robot'),
        name: li.querySelector('.pname').textContent,
        badge: li.querySelector('.bot') ? li.querySelector('.bot').textContent : null,
        title: li.querySelector('.bot') ? li.querySelector('.bot').title : null,
      }));
    });
    const robots = list.filter((p) => p.robot);
    assert.equal(robots.length, 3, JSON.stringify(list));
    for (const r of robots) {
      assert.ok(Number(r.id) < 0, `a robot's id is negative: ${JSON.stringify(r)}`);
      assert.match(r.name, /^robot /);
      assert.equal(r.badge, 'bot');
      assert.match(r.title, /robot/i);
    }
    const me = list.find((p) => p.me);
    assert.ok(me, JSON.stringify(list));
    assert.equal(String(me.id), String(id));
    assert.equal(me.badge, null, 'a person has no badge');
    assert.deepEqual(pageErrors, []);
  } finally {
    await context.close();
    await stopChild(gw.child, 5000);
  }
});

// A rolled gateway: SIGTERM closes the page's socket with 1001 (today) or
// 1012 (a draining gateway); a new gateway takes the port over. The page must
// come back by itself and resume the same player, its snake still alive.
// Cluster mode, so that the session outlives the gateway; slow ticks and a
// long resume grace, so that the snake (which keeps going while its player
// is away, unless it is parked) lives through the restart.
test('after a gateway restart (close 1001/1012) the page reconnects and resumes its snake', { timeout: 90_000 }, async () => {
  const redis = await startRedis();
  let worker = null;
  let gw = null;
  const context = await browser.newContext();
  try {
    const game = ['--tick-rate', '2', '--resume-grace-secs', '60'];
    worker = await startServer('room-worker', WORKER_BIN,
      ['--redis-url', redis.url, '--listen', '127.0.0.1:0', '--worker-id', 'browser-w0', ...game]);
    const port = await freePort();
    const drain = await knownFlags(GATEWAY_BIN, [['--drain-delay-secs', '1'], ['--drain-close-secs', '1']]);
    const gatewayArgs = ['--redis-url', redis.url, '--listen', `127.0.0.1:${port}`, '--tick-rate', '2', ...drain];
    gw = await startServer('gateway', GATEWAY_BIN, gatewayArgs);

    const page = await newPage(context, 'resumer');
    await page.goto(`${gw.url}/?room=resumetest`);
    await waitFor(page, 'the client script', () => window.snakepit && window.snakepit.connState === 'disconnected');
    await page.fill('#name', 'resumer');
    await page.click('#connect');
    await waitFor(page, 'connected and handshake',
      () => window.snakepit.connState === 'connected' && window.snakepit.playerId != null, null, { timeout: 20_000, polling: 50 });
    const id = await page.evaluate(() => window.snakepit.playerId);
    await join(page);
    const before = await waitFor(page, 'my head on the grid',
      (id) => { const s = window.__snakeOf(id); return s && s.dir ? s : null; }, id, { timeout: 10_000, polling: 'raf' });
    // Head for the farthest wall, so the unsteered snake has room while away.
    const { width, height } = await page.evaluate(() => ({ width: window.snakepit.width, height: window.snakepit.height }));
    const room = {
      ArrowLeft: before.head.x, ArrowRight: width - 1 - before.head.x,
      ArrowUp: before.head.y, ArrowDown: height - 1 - before.head.y,
    };
    const reverse = Object.keys(ARROWS).find((k) => ARROWS[k].dx === -before.dir.dx && ARROWS[k].dy === -before.dir.dy);
    const key = Object.keys(room).filter((k) => k !== reverse).sort((a, b) => room[b] - room[a])[0];
    await page.keyboard.press(key);
    const tokenBefore = await page.evaluate(() => sessionStorage.getItem('snakepit.resume_token'));
    assert.ok(tokenBefore, 'the page kept a resume token');

    // Roll the gateway: the old one goes, a new one takes its port.
    await stopChild(gw.child);
    await waitFor(page, 'the close (1001 or 1012)',
      () => [1001, 1012].includes(window.snakepit.lastCloseCode) && window.snakepit.connState === 'reconnecting');
    const wait = await page.evaluate(() => window.snakepit.retryDelayMs);
    assert.ok(wait >= 0 && wait <= 1000, `a drain's first reconnect waits 0..1 s, not ${wait} ms`);
    gw = await startServer('gateway (replacement)', GATEWAY_BIN, gatewayArgs);

    await waitFor(page, 'reconnected and resumed',
      () => window.snakepit.connState === 'connected' && window.snakepit.playerId != null && window.snakepit.tick != null,
      null, { timeout: 20_000, polling: 50 });
    assert.equal(String(await page.evaluate(() => window.snakepit.playerId)), String(id), 'the same player');
    assert.equal(await page.evaluate(() => window.snakepit.roomId), 'resumetest');
    const after = await waitFor(page, 'my snake alive again on the grid',
      (id) => window.__snakeOf(id), id, { timeout: 10_000, polling: 'raf' });
    assert.ok(!after.dead && after.head, `the snake lived through the restart: ${await dump(page)}`);
    assert.equal(await page.evaluate(() => window.snakepit.alive), true);
    assert.ok(await page.isHidden('#join'), 'no Join button: the snake was resumed, not joined again');
    assert.deepEqual(pageErrors, []);
  } finally {
    await context.close();
    await stopChild(gw && gw.child, 5000);
    await stopChild(worker && worker.child, 5000);
    await stopChild(redis.child, 5000);
  }
});
