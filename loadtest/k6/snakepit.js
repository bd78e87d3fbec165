// k6 load test of a Snakepit gateway's /connect WebSocket.
//
//   k6 run -e SCENARIO=smoke loadtest/k6/snakepit.js
//   k6 run -e SCENARIO=ramp -e VUS=2000 -e RAMP=3m -e URL=ws://127.0.0.1:8080/connect loadtest/k6/snakepit.js
//   k6 run -e SCENARIO=soak -e VUS=500 -e DURATION=30m loadtest/k6/snakepit.js
//
// Environment: URL (default ws://127.0.0.1:8080/connect), SCENARIO
// (smoke | ramp | soak), VUS, DURATION, RAMP, SESSION (seconds one
// connection lives), SPECTATORS (share of watchers, 0..1).
//
// Players connect, send new_player, join once the world has arrived, steer
// with random valid turns (never straight back) and join again after they
// die. Spectators ask for the room list and watch a room. Every VU checks
// that the handshake and the world arrive and that frames keep arriving.
import ws from 'k6/ws';
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';

const URL = __ENV.URL || 'ws://127.0.0.1:8080/connect';
const SCENARIO = __ENV.SCENARIO || 'smoke';
const VUS = parseInt(__ENV.VUS || (SCENARIO === 'smoke' ? '5' : '200'), 10);
const SPECTATORS = parseFloat(__ENV.SPECTATORS || '0.1');
const SESSION = parseFloat(__ENV.SESSION || (SCENARIO === 'smoke' ? '8' : '60'));

// Time between two consecutive tick frames (ms).
const frameInterval = new Trend('snakepit_frame_interval', true);
// From opening the socket to the first `world` frame (ms).
const connectToWorld = new Trend('snakepit_connect_to_first_frame', true);
const frames = new Counter('snakepit_frames');
const tickGaps = new Counter('snakepit_tick_gaps');
const serverErrors = new Counter('snakepit_server_errors');
const sessionsOk = new Rate('snakepit_sessions_ok');

const scenarios = {
  smoke: {
    executor: 'constant-vus',
    vus: VUS,
    duration: __ENV.DURATION || '15s',
  },
  ramp: {
    executor: 'ramping-vus',
    startVUs: 0,
    stages: [
      { duration: __ENV.RAMP || '2m', target: VUS },
      { duration: __ENV.DURATION || '2m', target: VUS },
      { duration: '20s', target: 0 },
    ],
    gracefulRampDown: '20s',
  },
  soak: {
    executor: 'constant-vus',
    vus: VUS,
    duration: __ENV.DURATION || '30m',
  },
};

export const options = {
  scenarios: { [SCENARIO]: scenarios[SCENARIO] },
  thresholds: {
    // Frames arrive at the tick rate (10/s: 100 ms) with little jitter.
    snakepit_frame_interval: ['p(95)<250', 'p(99)<400'],
    snakepit_connect_to_first_frame: ['p(95)<2000'],
    snakepit_sessions_ok: ['rate>0.95'],
    snakepit_tick_gaps: ['count<10'],
    checks: ['rate>0.95'],
  },
};

const OPPOSITE = { 37: 39, 38: 40, 39: 37, 40: 38 };
const KEYS = [37, 38, 39, 40];

function commands(data) {
  const v = JSON.parse(data);
  if (!Array.isArray(v) || v.length === 0) return [];
  return Array.isArray(v[0]) ? v : [v];
}

export default function () {
  const spectator = Math.random() < SPECTATORS;
  const name = `k6-${__VU}-${__ITER}`.slice(0, 15);
  const started = Date.now();
  let myId = null;
  let gotHandshake = false;
  let gotWorld = false;
  let alive = false;
  let lastKey = 0;
  let lastTick = -1;
  let lastFrameAt = 0;
  let tickFrames = 0;
  // The previous tick frame had a death in it: the game may have stopped
  // there (its loop runs only while someone is alive, and steps again one
  // tick after the next join), so the wait for the next tick is no jitter.
  let mayHaveStopped = false;

  const res = ws.connect(URL, {}, function (socket) {
    socket.on('open', function () {
      if (spectator) socket.send(JSON.stringify(['rooms']));
      else socket.send(JSON.stringify(['new_player', name]));
    });

    socket.on('message', function (data) {
      frames.add(1);
      const cmds = commands(data);
      const deaths = cmds.some((c) => c[0] === 'p_gameover');
      for (const c of cmds) {
        switch (c[0]) {
          case 'handshake':
            gotHandshake = true;
            myId = c[2];
            break;
          case 'rooms': {
            const rooms = c[1] || [];
            if (rooms.length > 0) {
              socket.send(JSON.stringify(['spectate', rooms[Math.floor(Math.random() * rooms.length)][0]]));
              gotHandshake = true;
            } else {
              socket.send(JSON.stringify(['new_player', name]));
            }
            break;
          }
          case 'world':
            if (!gotWorld) connectToWorld.add(Date.now() - started);
            gotWorld = true;
            lastTick = -1;
            if (!spectator && !alive && myId) socket.send(JSON.stringify(['join']));
            break;
          case 'tick': {
            const now = Date.now();
            if (lastTick >= 0 && c[1] === lastTick + 1) {
              if (!mayHaveStopped) frameInterval.add(now - lastFrameAt);
            } else if (lastTick >= 0 && c[1] > lastTick + 1) tickGaps.add(c[1] - lastTick - 1);
            lastTick = c[1];
            lastFrameAt = now;
            mayHaveStopped = deaths;
            tickFrames += 1;
            break;
          }
          case 'p_joined':
            if (c[1] === myId) alive = true;
            break;
          case 'p_gameover':
            if (c[1] === myId) {
              alive = false;
              socket.setTimeout(function () {
                socket.send(JSON.stringify(['join']));
              }, 200 + Math.random() * 800);
            }
            break;
          case 'error':
            // A join racing a death is harmless; anything else counts.
            if (c[1] !== 'Already playing') serverErrors.add(1, { text: String(c[1]) });
            break;
        }
      }
    });

    // Steer: a random turn that is not straight back, a few times a second.
    socket.setInterval(function () {
      if (!alive || spectator) return;
      if (Math.random() < 0.5) return;
      const options = KEYS.filter((k) => k !== OPPOSITE[lastKey] && k !== lastKey);
      lastKey = options[Math.floor(Math.random() * options.length)];
      socket.send(JSON.stringify(lastKey));
    }, 300);

    socket.setTimeout(function () {
      socket.close();
    }, SESSION * 1000);
  });

  const ok = check(res, { 'upgraded (101)': (r) => r && r.status === 101 });
  const alive_ = check(null, {
    'handshake received': () => gotHandshake,
    'world received': () => gotWorld,
    'frames keep arriving': () => tickFrames >= Math.max(1, SESSION * 2),
  });
  sessionsOk.add(ok && alive_);
}
