// Headless-Chromium test of the Snakepit browser client against the real gateway.
//
//   cd tests/browser && npm install && npm test
//
// Environment:
//   SNAKEPIT_GATEWAY_BIN  gateway binary (default ../../target/debug/gateway from this file)
//   CHROMIUM              Chromium executable (default /usr/bin/chromium)
//   ARTIFACTS             where browser.png goes (default ../../artifacts from this file)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const GATEWAY_BIN = process.env.SNAKEPIT_GATEWAY_BIN
  ? path.resolve(process.env.SNAKEPIT_GATEWAY_BIN)
  : path.resolve(HERE, '../../target/debug/gateway');
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
    const child = spawn(GATEWAY_BIN, ['--listen', '127.0.0.1:0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: process.env,
    });
    gateway = child;
    let ready = false;
    const timer = setTimeout(() => {
      if (!ready) reject(new Error(`gateway did not print "listening on ..." within 20 s\n${logTail()}`));
    }, 20_000);
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
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(t);
}

process.on('exit', () => {
  if (gateway && gateway.exitCode === null) gateway.kill('SIGKILL');
});

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
}, { timeout: 40_000 });

after(async () => {
  try {
    if (browser) await browser.close();
  } finally {
    browser = null;
    await stopGateway();
  }
});

// ---- helpers -----------------------------------------------------------------

async function newPage(context, label) {
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${label}: ${e.message}`));
  return page;
}

// Opens the page, enters a name, clicks Connect and waits for the handshake.
async function connectAs(page, name, query = '') {
  await page.goto(`${baseUrl}/${query}`);
  await page.waitForFunction(() => window.snakepit && window.snakepit.connState === 'disconnected', null, WAIT);
  await page.fill('#name', name);
  await page.click('#connect');
  await page.waitForFunction(
    () => window.snakepit.connState === 'connected' && window.snakepit.playerId != null,
    null,
    WAIT,
  );
  assert.equal(await page.textContent('#conn-state'), 'connected');
  assert.equal(await page.evaluate(() => window.snakepit.name), name);
  assert.ok(await page.isVisible('#join'), 'Join is shown before the first join');
  return page.evaluate(() => window.snakepit.playerId);
}

async function join(page) {
  await page.click('#join');
  await page.waitForFunction(() => window.snakepit.alive === true, null, WAIT);
  await page.waitForFunction(() => document.getElementById('join').hidden, null, WAIT);
}

// Waits until the head ('%' in the player's colour) of player `id` is on the
// page's grid, and differs from `prev` if given; returns {x, y}.
async function waitHead(page, id, prev = null, timeout = 5000) {
  const handle = await page.waitForFunction(
    ({ id, prev }) => {
      const s = window.snakepit;
      const p = s.players[id];
      if (!p || !p.alive) return null;
      for (let y = 0; y < s.height; y++) {
        for (let x = 0; x < s.width; x++) {
          const c = s.grid[y][x];
          if (c[0] === '%' && c[1] === p.colour) {
            if (prev && prev.x === x && prev.y === y) return null;
            return { x, y };
          }
        }
      }
      return null;
    },
    { id, prev },
    { timeout, polling: 25 },
  );
  return handle.jsonValue();
}

// ---- tests -----------------------------------------------------------------------

test('a player connects, joins, steers, and the field is drawn', { timeout: 30_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  try {
    const page = await newPage(context, 'solo');
    const id = await connectAs(page, 'solo-tester');
    assert.ok(await page.evaluate(() => window.snakepit.roomId), 'handshake gave a room');

    await join(page);
    const h0 = await waitHead(page, id);
    const h1 = await waitHead(page, id, h0);
    const moved = { dx: h1.x - h0.x, dy: h1.y - h0.y };
    assert.equal(Math.abs(moved.dx) + Math.abs(moved.dy), 1, `one cell per tick: ${JSON.stringify([h0, h1])}`);

    // Turn perpendicular to the current direction, towards the wider side.
    const { width, height } = await page.evaluate(() => ({
      width: window.snakepit.width,
      height: window.snakepit.height,
    }));
    const key = moved.dx !== 0
      ? (h1.y < height / 2 ? 'ArrowDown' : 'ArrowUp')
      : (h1.x < width / 2 ? 'ArrowRight' : 'ArrowLeft');
    await page.keyboard.press(key);
    const h2 = await waitHead(page, id, h1);
    const h3 = await waitHead(page, id, h2);
    assert.notDeepEqual(h3, h1, 'the head moved');
    assert.deepEqual(
      { dx: h3.x - h2.x, dy: h3.y - h2.y },
      ARROWS[key],
      `after ${key} the snake goes that way: ${JSON.stringify([h0, h1, h2, h3])}`,
    );

    // The canvas is not blank: the head cell has a lit pixel in the snake's colour.
    const pixels = await page.evaluate((id) => {
      const s = window.snakepit;
      const colour = s.players[id].colour;
      let head = null;
      for (let y = 0; y < s.height && !head; y++) {
        for (let x = 0; x < s.width; x++) {
          if (s.grid[y][x][0] === '%' && s.grid[y][x][1] === colour) { head = { x, y }; break; }
        }
      }
      const canvas = document.querySelector('canvas');
      const cw = canvas.width / s.width;
      const ch = canvas.height / s.height;
      const img = canvas.getContext('2d').getImageData(
        Math.floor(head.x * cw), Math.floor(head.y * ch), Math.ceil(cw), Math.ceil(ch),
      ).data;
      let lit = 0;
      let max = [0, 0, 0];
      for (let i = 0; i < img.length; i += 4) {
        const sum = img[i] + img[i + 1] + img[i + 2];
        if (sum > 60) lit++;
        if (sum > max[0] + max[1] + max[2]) max = [img[i], img[i + 1], img[i + 2]];
      }
      return { head, lit, max, colour };
    }, id);
    assert.ok(pixels.lit > 0, `head cell has non-black pixels: ${JSON.stringify(pixels)}`);

    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'browser.png'), fullPage: true });
    assert.deepEqual(pageErrors, []);
  } finally {
    await context.close();
  }
});

test('two players in one room see each other', { timeout: 30_000 }, async () => {
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

    await join(a);
    await join(b);

    for (const [page, other, otherName] of [[a, idB, 'bob'], [b, idA, 'alice']]) {
      await page.waitForFunction(
        ({ other, otherName }) => {
          const p = window.snakepit.players[other];
          return p && p.alive && p.name === otherName &&
            document.getElementById('players').textContent.includes(otherName);
        },
        { other, otherName },
        WAIT,
      );
      await waitHead(page, other, null, 10_000);
    }

    // The room list knows the room.
    await a.click('#refresh-rooms');
    await a.waitForFunction(
      () => window.snakepit.rooms.some((r) => r[0] === 'browsertest'),
      null,
      WAIT,
    );
    assert.deepEqual(pageErrors, []);
  } finally {
    await ctxA.close();
    await ctxB.close();
  }
});
