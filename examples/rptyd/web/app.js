// The rptyd web terminal: xterm.js bridged over a WebSocket to a
// reconnecting PTY session (docs/PROTOCOL.md). The session UUID lives in the
// page's URL (?reconnect=...), so a reload reattaches to the same shell; a
// dropped connection is retried with backoff. Every request to the server is
// one binary WebSocket message of protocol JSON; output arrives as binary
// messages of raw terminal bytes.
(function () {
  'use strict';

  // Close code the daemon sends when the session itself is over (process
  // exited, timed out, server shut down). Reattaching to that UUID would
  // start a fresh shell, so the page asks first.
  const SESSION_ENDED = 4000;
  const MIN_DELAY_MS = 250;
  const MAX_DELAY_MS = 10000;
  const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const NIL_UUID = '00000000-0000-0000-0000-000000000000';

  const params = new URLSearchParams(location.search);
  const statusEl = document.getElementById('status');
  const encoder = new TextEncoder();

  const term = new Terminal({
    cursorBlink: true,
    fontFamily: '"DejaVu Sans Mono", "Cascadia Mono", Menlo, Consolas, "Liberation Mono", monospace',
    fontSize: 14,
    // At line height 1 the DOM renderer clips underscores at the cell's foot.
    lineHeight: 1.15,
    scrollback: 5000,
    theme: { background: '#1e1e1e', foreground: '#d4d4d4', cursor: '#d4d4d4' },
  });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById('terminal'));
  fit.fit();
  term.focus();

  let sessionID = '';
  let ws = null;
  let attempt = 0;
  let retryTimer = 0;
  let state = '';
  let ended = false;
  // The size the server knows, so a resize is sent only when it changes.
  let sentRows = 0;
  let sentCols = 0;

  // Hooks for tests and for poking at the page from the console.
  const hooks = { term: term, fit: fit, connects: 0 };
  Object.defineProperty(hooks, 'state', { get: () => state });
  Object.defineProperty(hooks, 'sessionID', { get: () => sessionID });
  window.rpty = hooks;

  function setState(s, text) {
    state = s;
    statusEl.dataset.state = s;
    statusEl.textContent = text || s;
    document.title = s === 'connected' ? 'rptyd' : 'rptyd (' + s + ')';
  }

  // crypto.randomUUID needs a secure context; getRandomValues works on
  // plain http from any host.
  function newUUID() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  // useSession makes id the page's session and records it in the URL
  // without adding a history entry.
  function useSession(id) {
    sessionID = id;
    params.set('reconnect', id);
    history.replaceState(null, '', location.pathname + '?' + params.toString() + location.hash);
  }

  function bridgeURL(scheme) {
    const q = new URLSearchParams();
    q.set('reconnect', sessionID);
    q.set('height', String(term.rows));
    q.set('width', String(term.cols));
    for (const k of ['command', 'backend', 'view']) {
      const v = params.get(k);
      if (v) q.set(k, v);
    }
    const u = new URL('ws?' + q.toString(), location.href);
    if (scheme === 'ws') u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return u;
  }

  function send(req) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(encoder.encode(JSON.stringify(req)));
      return true;
    }
    return false;
  }

  function sendSize() {
    if (term.rows === sentRows && term.cols === sentCols) return;
    if (send({ height: term.rows, width: term.cols })) {
      sentRows = term.rows;
      sentCols = term.cols;
    }
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = 0;
    if (ended) return;
    if (attempt > 0) setState('reconnecting', 'reconnecting…');
    // The init carries this size; remember it for the open.
    const rows = term.rows;
    const cols = term.cols;
    const sock = new WebSocket(bridgeURL('ws'));
    sock.binaryType = 'arraybuffer';
    ws = sock;
    let opened = false;

    sock.onopen = () => {
      opened = true;
      attempt = 0;
      hooks.connects++;
      sentRows = rows;
      sentCols = cols;
      // The server replays the session's recent output on every attach:
      // clear what the previous connection drew so it is not doubled. RIS
      // goes through the write queue, so it lands after any output still
      // pending from the old connection and before the replay.
      term.write('\x1bc');
      setState('connected');
      sendSize();
    };
    sock.onmessage = (ev) => {
      // Raw bytes: xterm decodes UTF-8 itself, across message boundaries.
      term.write(typeof ev.data === 'string' ? ev.data : new Uint8Array(ev.data));
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      if (ev.code === SESSION_ENDED) {
        sessionEnded();
      } else if (!opened) {
        diagnose();
      } else {
        scheduleReconnect();
      }
    };
  }

  // A WebSocket that never opened hides the HTTP status; ask again over
  // plain HTTP so a 400 (bad query) is shown instead of retried forever.
  function diagnose() {
    fetch(bridgeURL('http'), { cache: 'no-store' })
      .then((res) => (res.status === 400 ? res.text() : null))
      .then((msg) => {
        if (msg !== null) {
          setState('error', 'error: ' + msg.trim());
        } else {
          scheduleReconnect();
        }
      })
      .catch(() => scheduleReconnect());
  }

  function scheduleReconnect() {
    if (ended || retryTimer) return;
    // Exponential backoff with jitter, so that many pages reconnecting
    // to a restarted daemon do not arrive in step.
    const cap = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * Math.pow(2, attempt));
    const delay = cap / 2 + Math.random() * cap / 2;
    attempt++;
    setState('reconnecting', 'reconnecting in ' + Math.ceil(delay / 1000) + 's…');
    retryTimer = setTimeout(connect, delay);
  }

  function sessionEnded() {
    ended = true;
    setState('ended', 'session ended — press Enter for a new one');
    // Dim note, cursor hidden: nothing here takes input any more. The
    // reset before the next session brings the cursor back.
    term.write('\r\n\x1b[2m[session ended — press Enter to start a new session]\x1b[0m\r\n\x1b[?25l');
  }

  term.onData((data) => {
    if (ended) {
      if (data === '\r') {
        ended = false;
        attempt = 0;
        useSession(newUUID());
        term.write('\x1bc');
        setState('connecting');
        connect();
      }
      return;
    }
    // Typing while disconnected is dropped rather than queued: it would
    // land in whatever the shell is doing by the time the page is back.
    send({ data: data });
  });
  term.onResize(sendSize);

  // Refit whenever the window (or anything else) changes the container's
  // size, at most once per frame.
  let fitQueued = false;
  new ResizeObserver(() => {
    if (fitQueued) return;
    fitQueued = true;
    requestAnimationFrame(() => {
      fitQueued = false;
      fit.fit();
    });
  }).observe(document.getElementById('terminal'));

  // Coming back online or to the tab is a good moment to retry now.
  function retryNow() {
    if (retryTimer) connect();
  }
  window.addEventListener('online', retryNow);
  // Leaving the page hangs up (a page kept in the back/forward cache would
  // otherwise stay attached, and counted, while nobody sees it); coming
  // back to it reconnects.
  window.addEventListener('pagehide', () => {
    const sock = ws;
    ws = null;
    if (sock) sock.close(1000);
  });
  window.addEventListener('pageshow', (ev) => {
    if (ev.persisted && !ended && !ws) connect();
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') retryNow();
  });

  const given = params.get('reconnect');
  useSession(given && UUID_RE.test(given) && given !== NIL_UUID ? given.toLowerCase() : newUUID());
  setState('connecting');
  connect();
})();
