// Snakepit browser client: plain ES2020, no framework, no build step.
// Speaks the protocol of docs/protocol.md over one WebSocket at /connect and
// draws the field on a <canvas>, one monospace glyph per cell.
// Server text (player names, room ids, errors) only ever reaches the page as
// textContent or canvas fillText, never as HTML.
(() => {
  'use strict';

  // ---- constants --------------------------------------------------------
  const COLOURS = ['#ffffff', '#ff0000', '#ffff00', '#00ff00', '#00ffff', '#4444ff', '#ff00ff'];
  const CELL_W = 14;                // CSS pixels per cell
  const CELL_H = 20;
  const FONT = 'bold 16px "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace';
  const DEFAULT_W = 50;
  const DEFAULT_H = 25;
  const ROOMS_EVERY_MS = 5000;
  // Reconnects: full-jitter exponential backoff, each wait uniform in
  // [0, min(RETRY_MAX_MS, RETRY_BASE_MS * 2^n)], n the failures in a row, so
  // the players of a dropped gateway do not all come back at once. A
  // connection open for RETRY_RESET_MS resets n. A planned drain (1001, 1012)
  // after such a connection waits uniform in [0, DRAIN_SPREAD_MS] first.
  const RETRY_BASE_MS = 500;
  const RETRY_MAX_MS = 5000;
  const RETRY_RESET_MS = 10000;
  const DRAIN_SPREAD_MS = 1000;
  const ROOM_RE = /^[A-Za-z0-9_-]{1,24}$/;
  // eslint-disable-next-line no-control-regex
  const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;
  const TOKEN_KEY = 'snakepit.resume_token';
  const NAME_KEY = 'snakepit.name';
  const LEFT = 37, UP = 38, RIGHT = 39, DOWN = 40;
  const KEYMAP = {
    ArrowLeft: LEFT, ArrowUp: UP, ArrowRight: RIGHT, ArrowDown: DOWN,
    KeyA: LEFT, KeyW: UP, KeyD: RIGHT, KeyS: DOWN,
  };
  const ERR_BAD_TOKEN = 'Unknown or expired resume token';

  // ---- DOM --------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const el = {
    conn: $('conn-state'),
    login: $('login'),
    name: $('name'),
    connect: $('connect'),
    join: $('join'),
    roomName: $('room-name'),
    status: $('status'),
    canvas: $('field'),
    players: $('players'),
    top: $('top-scores'),
    rooms: $('rooms'),
    refresh: $('refresh-rooms'),
    roomForm: $('room-form'),
    roomInput: $('room-input'),
    roomWatch: $('room-watch'),
  };
  const ctx = el.canvas.getContext('2d', { alpha: false });

  // ---- state (exposed for tests as window.snakepit) ----------------------
  const emptyGrid = (w, h) => {
    const g = new Array(h);
    for (let y = 0; y < h; y++) {
      const row = new Array(w);
      for (let x = 0; x < w; x++) row[x] = [' ', 0];
      g[y] = row;
    }
    return g;
  };

  const S = {
    connState: 'disconnected',   // connecting | connected | reconnecting | disconnected
    playerId: null,
    name: '',
    roomId: null,
    spectating: false,
    alive: false,
    tick: null,
    width: DEFAULT_W,
    height: DEFAULT_H,
    grid: emptyGrid(DEFAULT_W, DEFAULT_H),
    players: {},                 // id -> { name, colour, score, alive }
    topScores: [],               // [[name, score, colour], ...]
    rooms: [],                   // [[room_id, players, capacity], ...]
    status: '',
    lastError: null,
    lastCloseCode: null,         // code of the last close event
    retryDelayMs: null,          // the last reconnect wait chosen
    send,
  };
  window.snakepit = S;

  // ---- connection --------------------------------------------------------
  let ws = null;
  let wanted = false;            // the user wants to be connected
  let retries = 0;               // failed connections in a row
  let openedAt = 0;              // when the current socket opened (ms)
  let retryTimer = null;
  let roomsTimer = null;
  let resumePending = false;     // sent ["resume", token], waiting for handshake
  let resumeToken = sessionStorage.getItem(TOKEN_KEY);
  // What this connection should be once open: { mode: 'player' | 'spectate', room }
  let intent = null;
  let pendingRoom = null;        // room of the last new_player, for the enter fallback
  let enterAfterResume = null;   // room the user asked for when a resume was sent
  let worldReady = false;        // the current room's world has arrived (Join waits for it)

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  function setConn(state) {
    S.connState = state;
    el.conn.textContent = state;
    el.conn.className = 'conn-' + state;
    updateControls();
  }

  function openSocket() {
    clearTimeout(retryTimer);
    retryTimer = null;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let sock;
    try {
      sock = new WebSocket(`${proto}//${location.host}/connect`);
    } catch (e) {
      setStatus('Cannot connect: ' + e.message);
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.onopen = () => {
      if (ws !== sock) return;
      openedAt = Date.now();
      S.tick = null;
      worldReady = false;
      setConn('connected');
      greet();
      send(['rooms']);
      clearInterval(roomsTimer);
      roomsTimer = setInterval(() => send(['rooms']), ROOMS_EVERY_MS);
    };
    sock.onmessage = (ev) => {
      if (ws !== sock) return;
      if (typeof ev.data === 'string') handleFrame(ev.data);
    };
    sock.onerror = () => { /* a close event follows */ };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      S.lastCloseCode = ev.code;
      clearInterval(roomsTimer);
      roomsTimer = null;
      resumePending = false;
      if (!wanted) {
        setConn('disconnected');
        return;
      }
      if (ev.code === 1008 || ev.code === 1009 || ev.code === 4009) {
        wanted = false;
        setConn('disconnected');
        setStatus(ev.code === 1008
          ? 'Disconnected by the server: too many messages.'
          : ev.code === 1009
            ? 'Disconnected by the server: message too big.'
            : 'This game was resumed elsewhere (another tab?).');
        return;
      }
      // 1001/1012 (gateway shutting down or draining), 4008 (we read too
      // slowly) and any other unexpected close: reconnect and resume.
      if (openedAt && Date.now() - openedAt >= RETRY_RESET_MS) retries = 0;
      openedAt = 0;
      scheduleReconnect(ev.code === 1001 || ev.code === 1012);
    };
  }

  function scheduleReconnect(drained = false) {
    setConn('reconnecting');
    clearTimeout(retryTimer);
    const span = drained && retries === 0
      ? DRAIN_SPREAD_MS
      : Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(retries, 16));
    retries += 1;
    const delay = Math.random() * span;
    S.retryDelayMs = delay;
    retryTimer = setTimeout(() => { if (wanted) openSocket(); }, delay);
  }

  // First messages on a fresh socket: resume the session if there is one,
  // else do what the user asked for.
  function greet() {
    if (resumeToken && (!intent || intent.mode === 'player')) {
      resumePending = true;
      send(['resume', resumeToken]);
    } else if (intent && intent.mode === 'spectate' && intent.room) {
      send(['spectate', intent.room]);
    } else if (intent && intent.mode === 'player') {
      sendNewPlayer(intent.room);
    }
  }

  function sendNewPlayer(room) {
    const name = S.name;
    pendingRoom = room || null;
    send(room ? ['new_player', name, room] : ['new_player', name]);
  }

  function forgetToken() {
    resumeToken = null;
    sessionStorage.removeItem(TOKEN_KEY);
  }

  // ---- incoming frames ---------------------------------------------------
  let redrawAll = false;
  const dirtyCells = [];
  let dirtyPlayers = false;
  let dirtyTop = false;
  let dirtyRooms = false;

  function handleFrame(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      return;
    }
    if (!Array.isArray(msg) || msg.length === 0) return;
    const cmds = typeof msg[0] === 'string' ? [msg] : msg.filter(Array.isArray);

    const hasWorld = cmds.some((c) => c[0] === 'world');
    if (hasWorld) {
      S.tick = null;                       // a new world restarts the tick count
    } else {
      const t = cmds.find((c) => c[0] === 'tick');
      if (t && typeof t[1] === 'number' && S.tick !== null && t[1] <= S.tick) return;  // stale
    }

    for (const cmd of cmds) {
      try {
        apply(cmd);
      } catch (e) {
        console.error('snakepit: bad command', cmd, e);
      }
    }
    flush();
  }

  function sameId(a, b) {
    return a !== null && a !== undefined && b !== null && b !== undefined && String(a) === String(b);
  }

  // Robot snakes, steered by the server, have negative ids (docs/protocol.md).
  function isRobot(id) {
    return Number(id) < 0;
  }

  function apply(cmd) {
    const a = cmd;
    switch (a[0]) {
      case 'tick':
        if (typeof a[1] === 'number') S.tick = a[1];
        break;

      case 'handshake': {
        resumePending = false;
        pendingRoom = null;
        S.name = String(a[1]);
        S.playerId = a[2];
        if (a[3] !== undefined && a[3] !== null) S.roomId = String(a[3]);
        S.spectating = false;
        S.alive = false;                   // p_joined after world tells if we still are
        worldReady = false;
        if (typeof a[4] === 'string' && a[4]) {
          resumeToken = a[4];
          sessionStorage.setItem(TOKEN_KEY, resumeToken);
        }
        sessionStorage.setItem(NAME_KEY, S.name);
        el.name.value = S.name;
        intent = { mode: 'player', room: S.roomId };
        if (enterAfterResume && enterAfterResume !== S.roomId) send(['enter', enterAfterResume]);
        enterAfterResume = null;
        send(['rooms']);
        clearStatus();
        dirtyPlayers = true;
        dirtyRooms = true;
        break;
      }

      case 'spectating':
        S.roomId = String(a[1]);
        S.spectating = true;
        S.playerId = null;
        S.alive = false;
        worldReady = false;
        forgetToken();                     // no snake to resume any more
        intent = { mode: 'spectate', room: S.roomId };
        send(['rooms']);
        dirtyPlayers = true;
        dirtyRooms = true;
        break;

      case 'world': {
        const rows = Array.isArray(a[1]) ? a[1] : [];
        const h = rows.length;
        const w = h ? Math.max(...rows.map((r) => (Array.isArray(r) ? r.length : 0))) : 0;
        S.width = w || DEFAULT_W;
        S.height = h || DEFAULT_H;
        const grid = emptyGrid(S.width, S.height);
        for (let y = 0; y < h; y++) {
          const row = rows[y];
          if (!Array.isArray(row)) continue;
          for (let x = 0; x < row.length; x++) {
            const c = row[x];
            if (Array.isArray(c)) grid[y][x] = [String(c[0] ?? ' '), c[1] | 0];
          }
        }
        S.grid = grid;
        S.players = {};                    // alive snakes follow as p_joined
        S.alive = false;
        worldReady = true;
        redrawAll = true;
        dirtyPlayers = true;
        break;
      }

      case 'reset_world':
        S.grid = emptyGrid(S.width, S.height);
        for (const id of Object.keys(S.players)) {
          if (!S.players[id].alive) delete S.players[id];
        }
        redrawAll = true;
        dirtyPlayers = true;
        break;

      case 'render': {
        const x = a[1] | 0;
        const y = a[2] | 0;
        if (y < 0 || y >= S.height || x < 0 || x >= S.width) break;
        S.grid[y][x] = [String(a[3] ?? ' '), a[4] | 0];
        if (!redrawAll) dirtyCells.push(x, y);
        break;
      }

      case 'p_joined': {
        const id = a[1];
        S.players[id] = { name: String(a[2]), colour: a[3] | 0, score: Number(a[4]) || 0, alive: true };
        if (sameId(id, S.playerId)) S.alive = true;
        dirtyPlayers = true;
        break;
      }

      case 'p_gameover': {
        const id = a[1];
        if (S.players[id]) S.players[id].alive = false;
        if (sameId(id, S.playerId)) S.alive = false;
        dirtyPlayers = true;
        break;
      }

      case 'p_score': {
        const p = S.players[a[1]];
        if (p) p.score = Number(a[2]) || 0;
        dirtyPlayers = true;
        break;
      }

      case 'top_scores':
        S.topScores = Array.isArray(a[1]) ? a[1].filter(Array.isArray) : [];
        dirtyTop = true;
        break;

      case 'rooms':
        S.rooms = Array.isArray(a[1]) ? a[1].filter(Array.isArray) : [];
        dirtyRooms = true;
        break;

      case 'pong':
        break;

      case 'error':
        onError(String(a[1]));
        break;

      default:
        break;                             // unknown commands are ignored
    }
  }

  function onError(text) {
    S.lastError = text;
    if (text === ERR_BAD_TOKEN) {
      // The session is gone: start a new player with the same name.
      forgetToken();
      if (resumePending) {
        resumePending = false;
        const room = (intent && intent.room) || S.roomId || null;
        if (S.name) sendNewPlayer(room);
        setStatus('Your old session expired; you are a new player.', 'info');
        return;
      }
    } else if (text.startsWith('Already playing as') && pendingRoom) {
      // We are still a player after all: move to the room instead.
      const room = pendingRoom;
      pendingRoom = null;
      send(['enter', room]);
      return;
    }
    pendingRoom = null;
    setStatus(text);
  }

  // ---- drawing -------------------------------------------------------------
  let canvasW = 0;
  let canvasH = 0;
  let canvasDpr = 0;

  function setupCanvas() {
    const dpr = Math.max(1, Math.min(3, window.devicePixelRatio || 1));
    if (canvasW === S.width && canvasH === S.height && canvasDpr === dpr) return false;
    canvasW = S.width;
    canvasH = S.height;
    canvasDpr = dpr;
    el.canvas.width = Math.round(S.width * CELL_W * dpr);
    el.canvas.height = Math.round(S.height * CELL_H * dpr);
    el.canvas.style.width = S.width * CELL_W + 'px';
    el.canvas.style.aspectRatio = `${S.width * CELL_W} / ${S.height * CELL_H}`;
    return true;
  }

  function prepareContext() {
    ctx.setTransform(canvasDpr, 0, 0, canvasDpr, 0, 0);
    ctx.font = FONT;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
  }

  function drawCell(x, y) {
    const cell = S.grid[y][x];
    const px = x * CELL_W;
    const py = y * CELL_H;
    ctx.fillStyle = '#000';
    ctx.fillRect(px, py, CELL_W, CELL_H);
    const ch = cell[0];
    if (ch && ch !== ' ') {
      ctx.fillStyle = COLOURS[cell[1]] || COLOURS[0];
      ctx.fillText(ch, px + CELL_W / 2, py + CELL_H / 2 + 1);
    }
  }

  function drawAll() {
    setupCanvas();
    prepareContext();
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, S.width * CELL_W, S.height * CELL_H);
    // Group glyphs by colour to keep fillStyle changes few.
    for (let c = 0; c < COLOURS.length; c++) {
      ctx.fillStyle = COLOURS[c];
      for (let y = 0; y < S.height; y++) {
        const row = S.grid[y];
        for (let x = 0; x < S.width; x++) {
          const cell = row[x];
          const col = COLOURS[cell[1]] ? cell[1] : 0;
          if (col === c && cell[0] !== ' ' && cell[0] !== '') {
            ctx.fillText(cell[0], x * CELL_W + CELL_W / 2, y * CELL_H + CELL_H / 2 + 1);
          }
        }
      }
    }
  }

  function flush() {
    if (redrawAll) {
      redrawAll = false;
      dirtyCells.length = 0;
      drawAll();
    } else if (dirtyCells.length) {
      if (setupCanvas()) {
        dirtyCells.length = 0;
        drawAll();
      } else {
        prepareContext();
        for (let i = 0; i < dirtyCells.length; i += 2) drawCell(dirtyCells[i], dirtyCells[i + 1]);
        dirtyCells.length = 0;
      }
    }
    if (dirtyPlayers) { dirtyPlayers = false; renderPlayers(); }
    if (dirtyTop) { dirtyTop = false; renderTop(); }
    if (dirtyRooms) { dirtyRooms = false; renderRooms(); }
    updateControls();
  }

  // ---- side panels (textContent only) --------------------------------------
  function colourClass(c) {
    const n = c | 0;
    return 'c' + (n >= 0 && n < COLOURS.length ? n : 0);
  }

  function renderPlayers() {
    const list = Object.entries(S.players)
      .filter(([, p]) => p.alive)
      .sort((a, b) => b[1].score - a[1].score);
    const frag = document.createDocumentFragment();
    for (const [id, p] of list) {
      const li = document.createElement('li');
      li.dataset.id = id;
      if (sameId(id, S.playerId)) li.className = 'me';
      const name = document.createElement('span');
      name.className = 'pname ' + colourClass(p.colour);
      name.textContent = p.name;
      const score = document.createElement('span');
      score.className = 'score';
      score.textContent = String(p.score);
      li.append(score, name);
      if (isRobot(id)) {
        li.classList.add('robot');
        const badge = document.createElement('span');
        badge.className = 'bot';
        badge.textContent = 'bot';
        badge.title = 'A robot snake, steered by the server';
        li.append(badge);
      }
      frag.append(li);
    }
    el.players.replaceChildren(frag);
  }

  function renderTop() {
    const frag = document.createDocumentFragment();
    for (const entry of S.topScores) {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.className = colourClass(entry[2]);
      name.textContent = String(entry[0]);
      const score = document.createElement('span');
      score.className = 'score';
      score.textContent = String(entry[1]);
      li.append(score, name);
      frag.append(li);
    }
    el.top.replaceChildren(frag);
  }

  function renderRooms() {
    const frag = document.createDocumentFragment();
    for (const r of S.rooms) {
      const room = String(r[0]);
      const li = document.createElement('li');
      li.dataset.room = room;
      if (room === S.roomId) li.className = 'current';
      const id = document.createElement('span');
      id.className = 'room-id';
      id.textContent = room;
      id.title = room;
      const count = document.createElement('span');
      count.className = 'room-count';
      count.textContent = `${r[1]}/${r[2]}`;
      const play = document.createElement('button');
      play.type = 'button';
      play.className = 'room-play';
      play.textContent = 'play';
      play.addEventListener('click', () => playRoom(room));
      const watch = document.createElement('button');
      watch.type = 'button';
      watch.className = 'room-watch';
      watch.textContent = 'watch';
      watch.addEventListener('click', () => watchRoom(room));
      li.append(id, count, play, watch);
      frag.append(li);
    }
    el.rooms.replaceChildren(frag);
  }

  function updateControls() {
    const connected = S.connState === 'connected';
    const active = S.connState !== 'disconnected';
    const isPlayer = S.playerId !== null && S.playerId !== undefined;
    el.name.disabled = active && (isPlayer || !connected);
    el.connect.disabled = active && (isPlayer || !connected);
    el.connect.textContent = active && !isPlayer ? 'Play' : 'Connect';
    if (!active) el.connect.textContent = 'Connect';
    el.join.hidden = !(isPlayer && !S.alive && worldReady);
    el.join.disabled = !connected;
    el.refresh.disabled = !connected;
    el.roomName.textContent = S.roomId === null
      ? '\u2013'
      : S.roomId + (S.spectating ? ' (watching)' : '');
  }

  // ---- status line -----------------------------------------------------------
  let statusTimer = null;
  function setStatus(text, kind) {
    S.status = text;
    el.status.textContent = text;
    el.status.className = kind === 'info' ? 'info' : '';
    clearTimeout(statusTimer);
    statusTimer = setTimeout(clearStatus, 10000);
  }
  function clearStatus() {
    S.status = '';
    el.status.textContent = '';
  }

  // ---- user actions -----------------------------------------------------------
  function validName(name) {
    const n = [...name].length;
    if (n < 1 || n > 15) return 'Name must be 1 to 15 characters';
    if (CONTROL_RE.test(name)) return 'Name must not contain control characters';
    return null;
  }

  function roomFromInput() {
    const room = el.roomInput.value.trim();
    if (!room) return null;
    if (!ROOM_RE.test(room)) {
      setStatus('Invalid room id (1 to 24 of A-Z a-z 0-9 _ -)');
      return undefined;
    }
    return room;
  }

  function onConnect(ev) {
    ev.preventDefault();
    const name = el.name.value.trim();
    const bad = validName(name);
    if (bad) { setStatus(bad); return; }
    let room = roomFromInput();
    if (room === undefined) return;
    if (room === null && S.spectating) room = S.roomId;     // play where we watch
    if (name !== S.name && sessionStorage.getItem(NAME_KEY) !== name) forgetToken();
    S.name = name;
    intent = { mode: 'player', room };
    enterAfterResume = resumeToken ? room : null;
    el.name.blur();
    el.connect.blur();
    if (ws && ws.readyState === WebSocket.OPEN) {
      // Connected but not a player (spectating, or new_player was refused).
      greet();
      return;
    }
    if (ws && ws.readyState === WebSocket.CONNECTING) return;
    wanted = true;
    retries = 0;
    setConn('connecting');
    openSocket();
  }

  function needName() {
    const name = (S.name || el.name.value).trim();
    const bad = validName(name);
    if (bad) { setStatus('Enter your name first: ' + bad.toLowerCase()); el.name.focus(); return null; }
    S.name = name;
    return name;
  }

  function ensureOpen(nextIntent) {
    if (ws && ws.readyState === WebSocket.OPEN) return true;
    intent = nextIntent;
    enterAfterResume = nextIntent.mode === 'player' && resumeToken ? nextIntent.room : null;
    if (ws && ws.readyState === WebSocket.CONNECTING) return false;
    wanted = true;
    retries = 0;
    setConn('connecting');
    openSocket();
    return false;
  }

  function playRoom(room) {
    if (S.playerId !== null && S.playerId !== undefined) {
      if (room === S.roomId) {
        if (!S.alive) send(['join']);
        return;
      }
      send(['enter', room]);
      return;
    }
    if (!needName()) return;
    if (!ensureOpen({ mode: 'player', room })) return;
    intent = { mode: 'player', room };
    sendNewPlayer(room);
  }

  function watchRoom(room) {
    if (!ensureOpen({ mode: 'spectate', room })) return;
    send(['spectate', room]);
  }

  el.login.addEventListener('submit', onConnect);

  el.join.addEventListener('click', () => {
    send(['join']);
    el.join.blur();
  });

  el.refresh.addEventListener('click', () => send(['rooms']));

  el.roomForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const room = roomFromInput();
    if (!room) { if (room === null) setStatus('Enter a room name'); return; }
    el.roomInput.blur();
    playRoom(room);
  });

  el.roomWatch.addEventListener('click', () => {
    const room = roomFromInput();
    if (!room) { if (room === null) setStatus('Enter a room name'); return; }
    watchRoom(room);
  });

  // ---- steering ---------------------------------------------------------------
  function steer(code) {
    if (S.playerId === null || S.playerId === undefined || !S.alive) return;
    send(code);
  }

  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) return;
    const code = KEYMAP[e.code] || KEYMAP[e.key];
    if (!code) return;
    e.preventDefault();                     // no page scrolling on arrows
    if (e.repeat) return;
    steer(code);
  });

  let touchStart = null;
  el.canvas.addEventListener('touchstart', (e) => {
    if (e.touches.length !== 1) { touchStart = null; return; }
    touchStart = { x: e.touches[0].clientX, y: e.touches[0].clientY };
    e.preventDefault();
  }, { passive: false });
  el.canvas.addEventListener('touchmove', (e) => { e.preventDefault(); }, { passive: false });
  el.canvas.addEventListener('touchend', (e) => {
    if (!touchStart || !e.changedTouches.length) return;
    const dx = e.changedTouches[0].clientX - touchStart.x;
    const dy = e.changedTouches[0].clientY - touchStart.y;
    touchStart = null;
    if (Math.max(Math.abs(dx), Math.abs(dy)) < 20) return;   // a tap, not a swipe
    if (Math.abs(dx) > Math.abs(dy)) steer(dx < 0 ? LEFT : RIGHT);
    else steer(dy < 0 ? UP : DOWN);
    e.preventDefault();
  }, { passive: false });
  el.canvas.addEventListener('touchcancel', () => { touchStart = null; });

  // ---- start ----------------------------------------------------------------
  const params = new URLSearchParams(location.search);
  const roomParam = params.get('room');
  if (roomParam) el.roomInput.value = roomParam;
  const savedName = sessionStorage.getItem(NAME_KEY);
  if (savedName) el.name.value = savedName;
  window.addEventListener('resize', () => { if (setupCanvas()) drawAll(); });
  setConn('disconnected');
  drawAll();
  renderPlayers();
  renderTop();
  renderRooms();
  el.name.focus();
})();
