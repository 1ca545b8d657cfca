// Probing the path to the daemon while the page reconnects (app.js):
// small HTTP requests to its alive endpoint, paced so that some TCP
// connection attempt sends a SYN often enough, for as long as the outage
// lasts, that the page learns within well under a second that the path is
// back.
//
// Why this shape (chromium 156, its net log, and the outage harness's
// measurements, docs/network.md): a request given up still leaves its TCP
// attempt (chromium's connect job) going until it connects or fails. The
// kernel retransmits its SYN 1, 2, 3, 4, 5, 7, 11, 19, 35 and 67 s after the
// first (Linux since 6.7; 1, 3, 7, 15, 31, 63 s before) and gives up about
// 131 s after it (tcp_syn_retries 6): chromium's socket pool (the
// TransportClientSocketPool this build uses) has no shorter handshake
// timeout, so the attempt ends with ERR_CONNECTION_TIMED_OUT 133-135 s
// after it began, sending nothing in its last minute. A socket group
// (host, privacy mode, network partition) holds at most six attempts: a
// request to a full group stalls and sends no SYN until one ends. So
// attempts are a budget, 48 per ATTEMPT_LIFE_MS over eight groups (the
// page itself and three hidden frames: credentialless, a partition of its
// own; sandboxed, cross-site to the page; both; each with and without
// credentials), and one outage's attempts still hold their slots in the
// next outage if it comes within two minutes. The page starts an attempt
// every START_EVERY_MS (about the budget's rate, so that it is never
// spent: the first FIRST_STARTS faster, for short outages) in the next
// group with a free slot by its own count, kept across outages. The
// attempts' SYNs and retransmissions then interleave: in a simulation,
// the next SYN after the path's return was at most about 0.8 s away (p95)
// for outages of 5 s to 10 minutes, however soon one followed another
// (docs/network.md). With every group full by the page's count (which
// may be wrong where attempts end sooner), it still sends a request, which
// waits in chromium's queue and starts an attempt as soon as a slot
// frees. Each probe's request stays pending for PROBE_TIMEOUT_MS, so
// whichever attempt of its group connects first answers at once.
(function () {
  'use strict';

  const ATTEMPTS_PER_GROUP = 6;
  // How long a TCP attempt over a dead path lives (the kernel's SYN
  // timeout, about 131 s, plus a margin): a slot is taken as free only
  // after this.
  const ATTEMPT_LIFE_MS = 136000;
  // How long a probe's request waits for its (or any) attempt of its group;
  // shorter than the 60 s handshake timeout of chromium's newer stream
  // pool, which would fail it.
  const PROBE_TIMEOUT_MS = 55000;
  const FIRST_STARTS = 4;
  const FIRST_EVERY_MS = 300;
  // 136 s / 48 attempts.
  const START_EVERY_MS = 2800;
  const TICK_MS = 100;
  const FRAMES = [
    { credentialless: true, sandbox: false },
    { credentialless: false, sandbox: true },
    { credentialless: true, sandbox: true },
  ];

  // create makes the probe frames (they load now, while the page is
  // connected) and returns the prober: start() begins probing (again),
  // stop() ends it and gives up the pending requests (left pending, they
  // made the second of two outages wait 10-12 s for an answer); onAnswer
  // is called on every answer while probing.
  function create(path, onAnswer) {
    const groups = [];
    const frames = [];
    let timer = 0;
    let next = 0;
    let started = 0;
    let rr = 0;
    let stopAll = new AbortController();
    const stats = { starts: 0, answers: 0, skipped: 0, queued: 0 };

    function addGroup(send) {
      for (const credentials of ['omit', 'include']) {
        // slots: this group's attempts, each taken until its until.
        groups.push({ send: send, credentials: credentials, slots: [] });
      }
    }
    addGroup((g) => {
      fetch(path, {
        cache: 'no-store',
        credentials: g.credentials === 'include' ? 'same-origin' : 'omit',
        signal: AbortSignal.any([stopAll.signal, AbortSignal.timeout(PROBE_TIMEOUT_MS)]),
      }).then(answered, () => {});
      return true;
    });
    for (const kind of FRAMES) {
      const f = document.createElement('iframe');
      f.title = 'path probe';
      f.setAttribute('aria-hidden', 'true');
      f.tabIndex = -1;
      f.style.cssText = 'position:absolute;width:0;height:0;border:0;visibility:hidden';
      if (kind.credentialless) {
        f.credentialless = true;
        f.setAttribute('credentialless', '');
      }
      if (kind.sandbox) f.setAttribute('sandbox', 'allow-scripts');
      const frame = { el: f, ready: false };
      frames.push(frame);
      addGroup((g) => {
        if (!frame.ready || !f.contentWindow) return false;
        f.contentWindow.postMessage({ rptyProbe: stats.starts, credentials: g.credentials, timeout: PROBE_TIMEOUT_MS }, '*');
        return true;
      });
      f.src = 'probe-frame.html';
      document.body.appendChild(f);
    }
    window.addEventListener('message', (ev) => {
      const frame = frames.find((fr) => fr.el.contentWindow === ev.source);
      const m = ev.data;
      if (!frame || !m) return;
      if (m.rptyProbeReady === true) frame.ready = true;
      else if (typeof m.rptyProbe === 'number') answered();
    });

    function answered() {
      if (!timer) return;
      stats.answers++;
      onAnswer();
    }

    // tick starts an attempt when one is due, in the next group (round
    // robin) that has a free slot. With none free by the page's count, the
    // request goes to the group whose slot frees first, uncounted: it
    // waits in chromium's queue for a slot.
    function tick() {
      const now = performance.now();
      if (now < next) return;
      let soonest = null;
      for (let i = 0; i < groups.length; i++) {
        const g = groups[(rr + i) % groups.length];
        g.slots = g.slots.filter((sl) => sl.until > now);
        if (g.slots.length >= ATTEMPTS_PER_GROUP) {
          if (!soonest || g.slots[0].until < soonest.slots[0].until) soonest = g;
          continue;
        }
        if (!g.send(g)) continue;
        g.slots.push({ start: now, until: now + ATTEMPT_LIFE_MS });
        rr = (rr + i + 1) % groups.length;
        due(now);
        return;
      }
      if (soonest && soonest.send(soonest)) {
        stats.queued++;
        due(now);
        return;
      }
      stats.skipped++;
    }

    function due(now) {
      started++;
      stats.starts++;
      next = now + (started < FIRST_STARTS ? FIRST_EVERY_MS : START_EVERY_MS);
    }

    return {
      stats: stats,
      // groups: how many socket groups probes can use now (two per frame
      // loaded, and the page's own two).
      groups() {
        return 2 + 2 * frames.filter((fr) => fr.ready).length;
      },
      start() {
        if (timer) return;
        started = 0;
        next = 0;
        timer = setInterval(tick, TICK_MS);
        tick();
      },
      stop() {
        if (!timer) return;
        clearInterval(timer);
        timer = 0;
        stopAll.abort();
        stopAll = new AbortController();
        for (const fr of frames) {
          if (fr.ready && fr.el.contentWindow) fr.el.contentWindow.postMessage({ rptyProbeStop: true }, '*');
        }
      },
    };
  }

  window.RptyProbe = { create: create };
})();
