// A probe frame of the rptyd page (probe.js): a hidden iframe whose
// requests chromium keeps in socket groups of their own (a credentialless
// iframe has a network partition of its own, a sandboxed one is cross-site
// to the page). The page asks it to probe the daemon's alive endpoint; it
// answers when a probe got any response. A no-cors request resolves on any
// answer from the server, which is all a probe needs, and needs no CORS
// headers for the sandboxed frame's opaque origin.
(function () {
  'use strict';
  const url = new URL('alive', location.href).href;
  let stopAll = new AbortController();
  window.addEventListener('message', (ev) => {
    const m = ev.data;
    if (ev.source !== window.parent || !m) return;
    if (m.rptyProbeStop === true) {
      stopAll.abort();
      stopAll = new AbortController();
      return;
    }
    if (typeof m.rptyProbe !== 'number') return;
    const timeout = Math.max(0, Math.min(Number(m.timeout) || 0, 60000));
    fetch(url, {
      mode: 'no-cors',
      cache: 'no-store',
      credentials: m.credentials === 'include' ? 'include' : 'omit',
      signal: AbortSignal.any([stopAll.signal, AbortSignal.timeout(timeout)]),
    }).then(() => ev.source.postMessage({ rptyProbe: m.rptyProbe }, ev.origin), () => {});
  });
  // Ready: the page sends probes here only after this.
  window.parent.postMessage({ rptyProbeReady: true }, '*');
})();
