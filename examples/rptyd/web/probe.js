// Probing the path to the daemon while the page reconnects (app.js):
// small HTTP requests to its alive endpoint, paced so that some TCP
// connection attempt sends a SYN at least about every half second for as
// long as the outage lasts, so the page learns within about half a second
// that the path is back.
//
// Why this shape (chromium 156, net/ and the outage harness's
// measurements, docs/network.md): a request given up still leaves its TCP
// attempt going until it connects or chromium gives it up, 60 s after it
// began; the kernel retransmits its SYN 1, 3, 7, 15 and 31 s after the
// first (Linux since 6.7: 1, 2, 3, 4, 5, 7, 11, 19 and 35 s). A socket
// group (host, privacy mode, network partition) holds at most six
// attempts: once six are pending, new requests wait for them and send no
// SYN. Probing as fast as possible therefore fills every group in a
// few seconds, and from about 40 s into an outage no SYN goes out for
// some 20 s. So the probes are spread over eight groups: the page itself
// and three hidden frames (credentialless: a partition of its own;
// sandboxed: cross-site to the page; both), each with and without
// credentials. An attempt is started every START_EVERY_MS in the next group
// with a free slot (the first FIRST_STARTS faster, for short outages), so
// that the 48 attempts' SYNs and retransmissions interleave: each group's
// attempts then repeat with chromium's 60 s timeout, and the gap between
// SYNs stays under about half a second (in a simulation; chromium sent
// far fewer in an outage soon after another: docs/network.md). Each
// probe's request stays pending
// almost as long as its attempt, so whichever attempt connects first
// answers at once. The slots are counted across outages: an attempt of
// the last one may still be pending (freeing the slots of those that
// connected when the path returned made the next outage's SYNs sparse:
// not understood).
(function () {
  'use strict';

  const ATTEMPTS_PER_GROUP = 6;
  // chromium's timeout for a TCP attempt, plus a margin: a slot is taken as
  // free only after this.
  const ATTEMPT_LIFE_MS = 60500;
  // How long a probe's request waits for its (or any) attempt of its group;
  // shorter than chromium's timeout, which would fail it.
  const PROBE_TIMEOUT_MS = 55000;
  const FIRST_STARTS = 6;
  const FIRST_EVERY_MS = 300;
  const START_EVERY_MS = 1300;
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
    const stats = { starts: 0, answers: 0, skipped: 0 };

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
    // robin) that has a free slot; none free, it tries again next tick.
    function tick() {
      const now = performance.now();
      if (now < next) return;
      for (let i = 0; i < groups.length; i++) {
        const g = groups[(rr + i) % groups.length];
        g.slots = g.slots.filter((sl) => sl.until > now);
        if (g.slots.length >= ATTEMPTS_PER_GROUP) continue;
        if (!g.send(g)) continue;
        g.slots.push({ start: now, until: now + ATTEMPT_LIFE_MS });
        rr = (rr + i + 1) % groups.length;
        started++;
        stats.starts++;
        next = now + (started < FIRST_STARTS ? FIRST_EVERY_MS : START_EVERY_MS);
        return;
      }
      stats.skipped++;
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
