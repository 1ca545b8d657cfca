// The rptyd web terminal: xterm.js bridged over a WebSocket to a
// reconnecting PTY session (docs/PROTOCOL.md). The session UUID lives in the
// page's URL (?reconnect=...), so a reload reattaches to the same shell; a
// dropped connection is retried with backoff and resumes where the terminal
// left off (the resume extension, read by resume.js). Every request to the
// server is one binary WebSocket message of protocol JSON; output arrives as
// binary messages of raw terminal bytes.
(function () {
  'use strict';

  // Close code the daemon sends when the session itself is over (process
  // exited, timed out, server shut down). Reattaching to that UUID would
  // start a fresh shell, so the page asks first.
  const SESSION_ENDED = 4000;
  // Close code the page sends when it drops its connection to let xterm.js
  // catch up (see flow control below); the bridge logs it as such.
  const CATCHING_UP = 4001;
  const MIN_DELAY_MS = 250;
  // Retried at least every second: live again within about a second of
  // the network's return.
  const MAX_DELAY_MS = 1000;
  // The link extension's heartbeat, and how long a connection may deliver
  // nothing before it is taken for dead.
  const HEARTBEAT_MS = 1000;
  const LINK_TIMEOUT_MS = 3000;
  // A heartbeat tick this late says the page itself was not running.
  const STALL_MS = 2 * HEARTBEAT_MS;
  // RTT_SAMPLES is how many heartbeats' round trips the path's is the
  // least of (see predict below).
  const RTT_SAMPLES = 4;
  // While reconnecting, the page also asks the daemon whether the path is
  // back, with small HTTP requests to PROBE_PATH paced over several
  // socket groups (probe.js, which says why). A WebSocket opened over a
  // dead path is stuck until the kernel's next SYN retransmission (1, 3,
  // 7, 15 s... after it began), and the browser opens one WebSocket to a
  // host at a time; new WebSockets cannot be the probe, since chromium
  // delays every new one by up to 5 s once a page has had many fail
  // (services/network/websocket_throttler.cc). When a probe is answered
  // and the WebSocket has been opening longer than OPEN_STUCK_MS (plus
  // four round trips; a healthy handshake takes a few), it is given up
  // and a new one opened at once. PROBE_EVERY_MS paces the check for a
  // WebSocket to replace before any answer (REOPEN_MS).
  const PROBE_PATH = 'alive';
  const PROBE_EVERY_MS = 250;
  const OPEN_STUCK_MS = 1000;
  // Before the path is known to be back, a WebSocket opening for
  // REOPEN_MS (its SYN and the kernel's first retransmission, 1 s later)
  // is also replaced, for a new SYN every second, as long as chromium's
  // throttle stays small: it delays a new WebSocket by 1-5 s times
  // 2^(pending + failed/(succeeded+1)) / 2^16, counting the last 2-4
  // minutes, so the page keeps its own count and replaces only while the
  // exponent stays at most THROTTLE_EXP (a delay under 40 ms).
  const REOPEN_MS = 2000;
  const THROTTLE_WINDOW_MS = 4 * 60 * 1000;
  const THROTTLE_EXP = 9;
  // The most input kept for the program while disconnected.
  const MAX_UNACKED = 1 << 20;
  // Flow control watermarks, in bytes handed to xterm.js but not yet
  // parsed: about what xterm.js's flow-control guide and VS Code use. The
  // high mark bounds how far the screen lags behind the program (xterm.js
  // parses tens of MB/s); the low mark leaves work for xterm.js while the
  // page reconnects.
  const HIGH_WATER = 100 * 1024;
  const LOW_WATER = 8 * 1024;
  // Output set aside while xterm.js catches up: more than this, and the page
  // drops the connection and resumes from its offset instead.
  const STASH_MAX = 100 * 1024;
  // The bridge's flow-control window (flowWindow in bridgeconn.go): it sends
  // at most this many bytes beyond what the page has acknowledged as
  // rendered, so a flooding program is paced to what xterm.js can show
  // and what the user types is echoed behind little output. The page
  // acknowledges every ACK_EVERY bytes, and whenever xterm.js is idle.
  const FLOW_WINDOW = 64 * 1024;
  const ACK_EVERY = 16 * 1024;
  const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const NIL_UUID = '00000000-0000-0000-0000-000000000000';
  const DIMENSION_RE = /^[0-9]{1,4}$/;
  // Keys that make the terminal signal the program (or end its input).
  const SIGNAL_KEYS = /[\x03\x04\x1a\x1c]/;
  // A fixed size from the URL is at most this many rows or columns: far
  // more than a screen shows, and few enough cells for xterm.js to hold.
  const MAX_DIMENSION = 1000;
  const EMPTY = new Uint8Array(0);

  const params = new URLSearchParams(location.search);
  // ?view=1: the server serves this page read-only.
  const viewOnly = params.get('view') === '1';
  const statusEl = document.getElementById('status');
  const encoder = new TextEncoder();

  const term = new Terminal({
    // For term.unicode, which xterm.js still calls experimental.
    allowProposedApi: true,
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
  // Character widths of Unicode 11, as the server's own terminal emulator
  // (internal/vt) counts them, so both agree where a wide character ends.
  term.loadAddon(new Unicode11Addon.Unicode11Addon());
  term.unicode.activeVersion = '11';
  term.open(document.getElementById('terminal'));
  // Predictive echo over slow links (predict.js), timed by the link
  // extension's heartbeats.
  // Prediction goes by the path's round trip: the least of the last few
  // heartbeats, so that one answer held up by a busy machine (a
  // collection, a tab in the background) does not switch it on over a
  // fast link.
  const predict = RptyPredict.attach(term, () => hooks.pathRtt, params);
  // The probes of the path while reconnecting (probe.js); its frames load
  // now, while the page can reach the daemon.
  const prober = RptyProbe.create(PROBE_PATH, () => pathAnswered());

  let sessionID = '';
  // rows and cols from the page's URL, when given: the terminal keeps them
  // whatever the window's size.
  let fixedSize = null;
  let ws = null;
  let attempt = 0;
  let retryTimer = 0;
  // Probing the path: from a lost (or failed) connection until the next
  // one opens. shortcut: a probe's answer may cut the backoff short (not
  // when the connection that failed was itself opened on an answer).
  let probeTimer = 0;
  let shortcut = true;
  let fromProbe = false;
  let openedAt = 0;
  // When this page's WebSockets failed (closed before they opened) and
  // opened, over the throttle's window.
  const wsFailed = [];
  const wsOpened = [];
  let state = '';
  let ended = false;
  // The size the server knows, so a resize is sent only when it changes.
  let sentRows = 0;
  let sentCols = 0;

  // Resume: offset is how many bytes of the session's output the terminal
  // has been given (a header and a redraw are not counted), so a new
  // connection asks for exactly what follows. null when unknown (after a
  // server without the extension, or a header the page could not read):
  // the next connection then asks from 0 and draws on a reset terminal.
  let offset = 0;

  // Flow control, first of all, is the bridge's window (FLOW_WINDOW): the
  // page acknowledges what xterm.js has parsed, and the bridge sends no
  // more than the window beyond that, which paces a flooding program on
  // the server. What follows is the page's own guard, for output that
  // still outruns xterm.js. pending is the output handed to xterm.js
  // whose write callback has not run yet, redrawPending the part of it
  // that is a redraw. When the live output in it reaches HIGH_WATER the
  // page stops handing output to xterm.js (draining) and sets aside what
  // arrives, up to STASH_MAX bytes; meanwhile the connection stays open,
  // so a burst costs no reconnect, input goes out at once and the end of
  // the session is seen. Once xterm.js is down to LOW_WATER the page goes
  // on with what it set aside. If more comes than that, the page drops
  // the connection at once (taking in output only to throw it away would
  // slow xterm.js down further) and, once drained, resumes from its
  // offset: the server then sends the bytes it still holds from there, or
  // a redraw of the present. A redraw is always taken whole (it is bounded
  // by the server, and the offset is right only after all of it) and
  // leaves the live output its full share.
  let pending = 0;
  let redrawPending = 0;
  let draining = false;
  let stash = [];
  let stashBytes = 0;
  // resumeWhenDrained: the connection was dropped to catch up.
  let resumeWhenDrained = false;
  // Input typed in the moment between dropping a connection to catch up
  // and the open of the next is sent on that open.
  let holdInput = false;
  let heldInput = [];
  // The link extension (link.js): this page's link ID; the input sent
  // and not yet taken by the program (strings, with their UTF-8 length),
  // from input offset ackedOff on; whether the last server that said had
  // the extension; heartbeats not yet answered, by token.
  const linkID = RptyLink.newID();
  let unacked = [];
  let ackedOff = 0;
  let linkKnown = false;
  let pingSeq = 0;
  const pings = new Map();

  // Hooks for tests and for poking at the page from the console.
  const hooks = {
    term: term, fit: fit, connects: 0, pauses: 0, catchups: 0, deltas: 0, resets: 0, plain: 0,
    // acks sent, and how often the window was full (the bridge then waits).
    acks: 0, windowFull: 0,
    // The link extension: whether the current server has it, the last
    // heartbeat's round trip in ms, connections left for dead.
    link: null, rtt: 0, pathRtt: 0, rtts: [], deadLinks: 0,
    // Heartbeat ticks that found the page had been held (see beat).
    stalls: 0,
    // Probes of the path sent while reconnecting, and answered; opening
    // WebSockets given up for a new one on an answer.
    probes: 0, probeAnswers: 0, stuckOpens: 0, reopens: 0,
    predict: predict,
  };
  Object.defineProperty(hooks, 'probeGroups', { get: () => prober.groups() });
  Object.defineProperty(hooks, 'inputTaken', { get: () => ackedOff });
  Object.defineProperty(hooks, 'inputUnacked', { get: () => unacked.length });
  Object.defineProperty(hooks, 'state', { get: () => state });
  Object.defineProperty(hooks, 'sessionID', { get: () => sessionID });
  Object.defineProperty(hooks, 'offset', { get: () => offset });
  Object.defineProperty(hooks, 'pending', { get: () => pending });
  Object.defineProperty(hooks, 'draining', { get: () => draining });
  Object.defineProperty(hooks, 'stashed', { get: () => stashBytes });
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

  function bridgeURL(scheme, from) {
    const q = new URLSearchParams();
    q.set('reconnect', sessionID);
    q.set('height', String(term.rows));
    q.set('width', String(term.cols));
    for (const k of ['command', 'backend', 'view']) {
      const v = params.get(k);
      if (v) q.set(k, v);
    }
    q.set('resume', '1');
    q.set('offset', String(from));
    q.set('flow', '1');
    q.set('link', linkID);
    q.set('input', String(ackedOff));
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

  // sendInput sends typed data, kept until the program has taken it
  // (with the link extension) so that a drop cannot lose it.
  function sendInput(data) {
    const open = ws && ws.readyState === WebSocket.OPEN;
    if (!open && !(linkKnown && unackedBytes() < MAX_UNACKED)) return false;
    // With the link extension input typed while disconnected is kept and
    // sent after the reconnect, where the server drops what it already
    // gave the program: nothing typed is lost or doubled.
    if (open && connLink === false) return send({ data: data });
    // In order behind input still to be sent again, which waits for the
    // connection's first bytes.
    unacked.push({ data: data, bytes: encoder.encode(data).length, sent: false });
    // Sent at once, and counted, when the connection has not said yet
    // whether its server has the extension and nothing waits to be sent
    // again (the first connection): a server with it counts these bytes
    // in its input offsets, and for one without it they are forgotten as
    // sent once. Sent uncounted, they made the page resend from an offset
    // behind the program's, and the server dropped new input as old.
    if (connLink === true || (open && connLink === null && !linkKnown)) resendInput();
    return true;
  }

  function unackedBytes() {
    return unacked.reduce((n, u) => n + u.bytes, 0);
  }

  function resendInput() {
    for (const u of unacked) {
      if (!u.sent && send({ data: u.data })) u.sent = true;
    }
  }

  // connLink: whether the current connection's server has the link
  // extension; null until its first bytes say.
  let connLink = null;

  // applyFrame forgets the input the program took, and times a
  // heartbeat's round trip. Only input this connection was sent counts:
  // its bytes run on from the offset its URL gave.
  function applyFrame(f) {
    while (unacked.length > 0 && unacked[0].sent && ackedOff + unacked[0].bytes <= f.in) {
      ackedOff += unacked[0].bytes;
      unacked.shift();
    }
    if (f.pong !== null && pings.has(f.pong)) {
      hooks.rtt = performance.now() - pings.get(f.pong);
      hooks.rtts.push(hooks.rtt);
      if (hooks.rtts.length > RTT_SAMPLES) hooks.rtts.shift();
      hooks.pathRtt = Math.min(...hooks.rtts);
      for (const k of pings.keys()) if (k <= f.pong) pings.delete(k);
    }
  }

  function sendSize() {
    if (term.rows === sentRows && term.cols === sentCols) return;
    if (send({ height: term.rows, width: term.cols })) {
      sentRows = term.rows;
      sentCols = term.cols;
    }
  }

  // write hands output to xterm.js, counting it as pending until parsed.
  function write(data, redraw) {
    if (data.length === 0) return;
    pending += data.length;
    if (redraw) redrawPending += data.length;
    term.write(data, () => {
      pending -= data.length;
      if (redraw) redrawPending -= data.length;
      if (draining && pending <= LOW_WATER) drained();
    });
  }

  // deliver hands an output or plain part to xterm.js, no more than the
  // high mark allows; the rest is set aside until xterm.js has caught up.
  function deliver(part) {
    if (draining) {
      setAside(part.kind, part.data);
      return;
    }
    const room = Math.max(0, HIGH_WATER - livePending());
    const data = part.data.length > room ? part.data.subarray(0, room) : part.data;
    write(data);
    if (part.kind === 'output') offset += data.length;
    if (livePending() >= HIGH_WATER) {
      draining = true;
      hooks.pauses++;
      if (data.length < part.data.length) setAside(part.kind, part.data.subarray(data.length));
    }
  }

  function setAside(kind, data) {
    if (stashBytes + data.length <= STASH_MAX) {
      stash.push({ kind: kind, data: data });
      stashBytes += data.length;
      return;
    }
    // Too far behind to go on with this connection: the next one resumes
    // from the offset.
    clearStash();
    const sock = ws;
    if (!sock) return;
    ws = null;
    holdInput = true;
    resumeWhenDrained = true;
    hooks.catchups++;
    sock.close(CATCHING_UP, 'catching up');
  }

  function clearStash() {
    stash = [];
    stashBytes = 0;
  }

  // drained goes on once xterm.js has caught up: with what was set aside,
  // or by resuming on a new connection from the offset.
  function drained() {
    draining = false;
    if (resumeWhenDrained) {
      resumeWhenDrained = false;
      connect();
      return;
    }
    const parts = stash;
    clearStash();
    // May start draining again, which sets the rest aside anew.
    for (const part of parts) deliver(part);
  }

  // livePending is the live output handed to xterm.js and not yet parsed.
  function livePending() {
    return pending - redrawPending;
  }

  // resetTerminal resets xterm.js once everything written before has been
  // parsed, so no earlier output lands on the fresh terminal.
  function resetTerminal() {
    predict.reset();
    term.write(EMPTY, () => term.reset());
  }

  function connect(onAnswer) {
    clearTimeout(retryTimer);
    retryTimer = 0;
    if (ended) return;
    fromProbe = onAnswer === true;
    openedAt = performance.now();
    if (attempt > 0) setState('reconnecting', 'reconnecting…');
    // The init carries this size; remember it for the open.
    const rows = term.rows;
    const cols = term.cols;
    const from = offset === null ? 0 : offset;
    // What an earlier connection set aside comes again from the offset.
    clearStash();
    resumeWhenDrained = false;
    // Input sent on a connection that never said whether its server has
    // the extension is forgotten, as sent once: a server without it may
    // have taken it (as the Go client does).
    if (!linkKnown) {
      ackedOff += unackedBytes();
      unacked = [];
    }
    const sock = new WebSocket(bridgeURL('ws', from));
    sock.binaryType = 'arraybuffer';
    ws = sock;
    connLink = null;
    pings.clear();
    const link = new RptyLink.Reader(linkID);
    let lastMessage = performance.now();
    // Input not taken is sent again, from the offset in the URL, once the
    // first bytes say the server has the extension; without it, it is
    // forgotten (it would be taken twice).
    for (const u of unacked) u.sent = false;
    let opened = false;
    const reader = new RptyResume.Reader();
    let plain = false;
    // Flow control of this connection: bytes received, and acknowledged
    // to the bridge or rendered but not yet acknowledged.
    let received = 0;
    let acked = 0;
    let toAck = 0;
    let full = false;

    // rendered acknowledges n bytes once xterm.js has parsed them, in
    // batches; at once when xterm.js has nothing else in hand.
    function rendered(n) {
      if (ws !== sock) return;
      toAck += n;
      if (toAck < ACK_EVERY && pending > 0) return;
      // A text message: binary ones are protocol requests.
      sock.send('ack ' + toAck);
      acked += toAck;
      toAck = 0;
      full = false;
      hooks.acks++;
    }

    // take handles one part of the output (see resume.js) and reports
    // whether to go on reading this connection.
    function take(part) {
      switch (part.kind) {
        case 'delta':
          if (part.offset !== from) {
            return broken('the server resumed at ' + part.offset + ', not at ' + from);
          }
          // Asked from 0 for want of an offset: draw it all afresh.
          if (offset === null) resetTerminal();
          offset = from;
          hooks.deltas++;
          return true;
        case 'reset':
          resetTerminal();
          offset = part.offset;
          hooks.resets++;
          return true;
        case 'redraw':
          write(part.data, true);
          return true;
        case 'output':
          deliver(part);
          // Not when deliver dropped the connection to catch up.
          return ws === sock;
        case 'plain':
          // No header: a server without the extension, which replays
          // recent output on every attach. Clear what the previous
          // connection drew so it is not doubled, as before.
          if (!plain) {
            plain = true;
            hooks.plain++;
            resetTerminal();
          }
          offset = null;
          deliver(part);
          return ws === sock;
        default:
          return broken(part.message);
      }
    }

    // broken gives up on a connection whose resume header makes no
    // sense: the page cannot tell what its terminal shows any more.
    function broken(why) {
      console.error('rptyd: resume header: ' + why);
      offset = null;
      ws = null;
      stopProbing();
      sock.close(1000, 'bad resume header');
      setState('error', 'error: the server sent a resume header the page cannot use (' + why + '); reload to start over');
      return false;
    }

    sock.onopen = () => {
      stopProbing();
      fromProbe = false;
      wsOpened.push(performance.now());
      opened = true;
      attempt = 0;
      hooks.connects++;
      sentRows = rows;
      sentCols = cols;
      setState('connected');
      sendSize();
      holdInput = false;
      if (!linkKnown) {
        for (const data of heldInput.splice(0)) sendInput(data);
      }
    };
    sock.onmessage = (ev) => {
      if (ws !== sock) return;
      // Raw bytes: xterm decodes UTF-8 itself, across message boundaries.
      const chunk = typeof ev.data === 'string' ? encoder.encode(ev.data) : new Uint8Array(ev.data);
      received += chunk.length;
      lastMessage = performance.now();
      let data;
      try {
        const r = link.push(chunk);
        data = r.out;
        if (connLink === null && link.first !== null) {
          connLink = link.first;
          linkKnown = link.first;
          hooks.link = link.first;
          if (link.first) {
            resendInput();
          } else {
            // Sent before: forgotten, as without the extension. Typed
            // since, and never sent: sent now.
            const unsent = unacked.filter((u) => !u.sent);
            ackedOff += unacked.reduce((n, u) => n + u.bytes, 0);
            unacked = [];
            for (const u of unsent) send({ data: u.data });
          }
          for (const d of heldInput.splice(0)) sendInput(d);
        }
        for (const f of r.frames) applyFrame(f);
      } catch (e) {
        console.error('rptyd: ' + e.message);
        ws = null;
        sock.close(1000, 'bad link frame');
        scheduleReconnect();
        return;
      }
      if (!full && received - acked >= FLOW_WINDOW) {
        full = true;
        hooks.windowFull++;
      }
      for (const part of reader.push(data)) {
        if (!take(part)) return;
      }
      // xterm.js parses writes in order: this callback runs once the
      // chunk's output (if any) is on the screen.
      term.write(EMPTY, () => rendered(chunk.length));
    };
    // Heartbeats, and the watchdog: a connection that delivered nothing
    // for a few of them (and is not waiting for this page to render) is
    // dead; it is left behind at once, since closing a WebSocket over a
    // dead link waits for an answer that never comes.
    //
    // Silence counts only while this page runs. A tick far behind its
    // schedule means the page was held (a long task, a frozen tab, a
    // machine asleep): what arrived meanwhile is still queued behind this
    // tick and no heartbeat went out, so the link gets its full timeout
    // again from now.
    let lastTick = performance.now();
    let awake = 0;
    const beat = setInterval(() => {
      if (ws !== sock) {
        clearInterval(beat);
        return;
      }
      const now = performance.now();
      if (now - lastTick > STALL_MS) {
        awake = now;
        hooks.stalls++;
      }
      lastTick = now;
      if (sock.readyState !== WebSocket.OPEN || connLink !== true) return;
      if (!full && now - Math.max(lastMessage, awake) > LINK_TIMEOUT_MS) {
        clearInterval(beat);
        hooks.deadLinks++;
        ws = null;
        sock.close(1000, 'no heartbeat answer');
        scheduleReconnect();
        return;
      }
      pingSeq++;
      pings.set(pingSeq, performance.now());
      send({ ping: pingSeq });
    }, HEARTBEAT_MS);
    sock.onclose = (ev) => {
      if (!opened) wsFailed.push(performance.now());
      if (ws !== sock) return;
      ws = null;
      if (!opened) {
        // Not the short gap of a catch-up after all: drop what was held.
        holdInput = false;
        heldInput = [];
      }
      if (ev.code === SESSION_ENDED) {
        // The session's last output may still be set aside: it is all
        // there is, so all of it goes to the terminal.
        for (const part of stash) write(part.data);
        clearStash();
        sessionEnded();
      } else if (!opened) {
        diagnose(from);
      } else {
        scheduleReconnect();
      }
    };
  }

  // A WebSocket that never opened hides the HTTP status; ask again over
  // plain HTTP so a 400 (bad query) is shown instead of retried forever.
  function diagnose(from) {
    fetch(bridgeURL('http', from), { cache: 'no-store' })
      .then((res) => (res.status === 400 ? res.text() : null))
      .then((msg) => {
        if (msg !== null) {
          stopProbing();
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
    shortcut = !fromProbe;
    setState('reconnecting', 'reconnecting in ' + Math.ceil(delay / 1000) + 's…');
    retryTimer = setTimeout(connect, delay);
    if (!probeTimer) {
      probeTimer = setInterval(probe, PROBE_EVERY_MS);
      prober.start();
    }
  }

  // probe runs while reconnecting: the prober (probe.js) asks the daemon
  // whether the path is back, and a WebSocket stuck opening may be
  // replaced (reopenIfStuck).
  function probe() {
    reopenIfStuck();
    hooks.probes = prober.stats.starts;
  }

  // pathAnswered: the daemon answered a probe, so the path is back. A
  // reconnection waiting out its backoff goes now; a WebSocket stuck
  // opening is given up for a new one.
  function pathAnswered() {
    if (!probeTimer || ended) return;
    hooks.probeAnswers++;
    if (retryTimer) {
      if (shortcut) connect(true);
      return;
    }
    const sock = ws;
    if (sock && sock.readyState === WebSocket.CONNECTING &&
        performance.now() - openedAt > OPEN_STUCK_MS + 4 * hooks.rtt) {
      hooks.stuckOpens++;
      ws = null;
      sock.close();
      connect(true);
    }
  }

  // reopenIfStuck replaces a WebSocket opening for REOPEN_MS while the
  // browser's throttle allows (see THROTTLE_EXP).
  function reopenIfStuck() {
    const sock = ws;
    if (!sock || sock.readyState !== WebSocket.CONNECTING || ended) return;
    const now = performance.now();
    if (now - openedAt < REOPEN_MS) return;
    for (const l of [wsFailed, wsOpened]) {
      while (l.length > 0 && now - l[0] > THROTTLE_WINDOW_MS) l.shift();
    }
    // This one fails when closed, and the new one is pending.
    if (1 + Math.floor((wsFailed.length + 1) / (wsOpened.length + 1)) > THROTTLE_EXP) return;
    hooks.reopens++;
    ws = null;
    sock.close();
    connect(fromProbe);
  }

  function stopProbing() {
    clearInterval(probeTimer);
    probeTimer = 0;
    prober.stop();
  }

  function sessionEnded() {
    ended = true;
    stopProbing();
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
        offset = 0;
        setState('connecting');
        connect();
      }
      return;
    }
    // A viewer's keys would only be dropped by the server (and counted
    // there as ignored input): they are not sent.
    if (viewOnly) return;
    // Without the link extension, typing while disconnected is dropped
    // rather than queued: it would land in whatever the shell is doing by
    // the time the page is back, and could be taken twice. With it, it is
    // kept and delivered once (sendInput).
    // The short gap of a catch-up is not a disconnection: that input is
    // held and sent first thing on the new connection, whose output the
    // page is then ready to show. A key that signals the program (Ctrl-C,
    // Ctrl-Z, Ctrl-\, or Ctrl-D for EOF) does not wait for xterm.js to
    // catch up: the new connection is opened at once, so that it stops a
    // flooding program without delay.
    predict.typed(data);
    if (sendInput(data) || !holdInput) return;
    heldInput.push(data);
    if (resumeWhenDrained && SIGNAL_KEYS.test(data)) {
      resumeWhenDrained = false;
      connect();
    }
  });
  term.onResize(sendSize);

  // Refit whenever the window (or anything else) changes the container's
  // size, at most once per frame; a size fixed in the URL stays.
  let fitQueued = false;
  new ResizeObserver(() => {
    if (fitQueued || fixedSize) return;
    fitQueued = true;
    requestAnimationFrame(() => {
      fitQueued = false;
      fit.fit();
    });
  }).observe(document.getElementById('terminal'));

  // Coming back online (the browser's signal that the network changed)
  // or to the tab is a good moment to retry now, and to give up a WebSocket
  // still opening, whose SYN may have gone out on the old network.
  function retryNow() {
    if (ended) return;
    if (retryTimer) {
      connect();
      return;
    }
    const sock = ws;
    if (sock && sock.readyState === WebSocket.CONNECTING && performance.now() - openedAt > OPEN_STUCK_MS) {
      hooks.stuckOpens++;
      ws = null;
      sock.close();
      connect();
    }
  }
  window.addEventListener('online', retryNow);
  // Leaving the page hangs up (a page kept in the back/forward cache would
  // otherwise stay attached, and counted, while nobody sees it); coming
  // back to it reconnects.
  window.addEventListener('pagehide', () => {
    stopProbing();
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

  // pageQuery validates the page's own query: reconnect (a session UUID;
  // absent or empty starts a new session), and height with width (a fixed
  // terminal size instead of the window's). command and backend go to the
  // bridge as they are, which answers a bad one with a 400 that the page
  // shows. It returns an error message, or '' when all is well.
  function pageQuery() {
    const given = params.get('reconnect');
    if (given && (!UUID_RE.test(given) || given === NIL_UUID)) {
      return 'invalid reconnect parameter ' + JSON.stringify(given) +
        ': want a non-nil session UUID (leave it out to start a new session)';
    }
    const h = params.get('height');
    const w = params.get('width');
    if ((h === null) !== (w === null)) return 'height and width go together: give both or neither';
    if (h !== null) {
      for (const [name, v] of [['height', h], ['width', w]]) {
        if (!DIMENSION_RE.test(v) || Number(v) < 1 || Number(v) > MAX_DIMENSION) {
          return 'invalid ' + name + ' parameter ' + JSON.stringify(v) + ': want a whole number from 1 to ' + MAX_DIMENSION;
        }
      }
      fixedSize = { rows: Number(h), cols: Number(w) };
    }
    useSession(given ? given.toLowerCase() : newUUID());
    return '';
  }

  const queryError = pageQuery();
  if (queryError) {
    setState('error', 'error: ' + queryError);
    return;
  }
  if (fixedSize) {
    term.resize(fixedSize.cols, fixedSize.rows);
  } else {
    fit.fit();
  }
  term.focus();
  setState('connecting');
  connect();
})();
