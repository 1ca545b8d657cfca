// The session menu of the rptyd web terminal: the daemon's live sessions
// (GET sessions) with their command, title, age and clients; open one here
// or in a new tab, watch one read-only, close one (DELETE sessions/ID), or
// start a new one. It only reads the page's state (window.rpty) and the
// URL; the terminal itself is app.js's.
(function () {
  'use strict';

  const POLL_MS = 2000;
  const params = new URLSearchParams(location.search);
  const viewing = params.get('view') === '1';

  const toggle = document.createElement('button');
  toggle.id = 'sessions-toggle';
  toggle.type = 'button';
  toggle.title = 'Sessions';
  toggle.setAttribute('aria-expanded', 'false');
  toggle.setAttribute('aria-controls', 'sessions-menu');
  toggle.textContent = viewing ? '☰ sessions · view only' : '☰ sessions';

  const menu = document.createElement('div');
  menu.id = 'sessions-menu';
  menu.hidden = true;
  menu.setAttribute('role', 'dialog');
  menu.setAttribute('aria-label', 'Sessions');

  const list = document.createElement('table');
  list.className = 'sessions-list';
  const note = document.createElement('p');
  note.className = 'sessions-note';
  const actions = document.createElement('div');
  actions.className = 'sessions-actions';
  const newHere = link('+ new session', pageURL(null, false), false);
  newHere.className = 'sessions-new';
  newHere.dataset.action = 'new';
  const newTab = link('↗ in a new tab', pageURL(null, false), true);
  newTab.dataset.action = 'new-tab';
  actions.append(newHere, ' · ', newTab);
  menu.append(list, note, actions);
  document.body.append(toggle, menu);

  let timer = 0;
  let loads = 0;

  // pageURL is this page for session id (null: a new one), keeping the
  // command and backend the page was opened with.
  function pageURL(id, view) {
    const q = new URLSearchParams();
    for (const k of ['command', 'backend']) {
      const v = params.get(k);
      if (v) q.set(k, v);
    }
    if (id) q.set('reconnect', id);
    if (view) q.set('view', '1');
    const s = q.toString();
    return location.pathname + (s ? '?' + s : '');
  }

  function link(text, href, newTab) {
    const a = document.createElement('a');
    a.textContent = text;
    a.href = href;
    if (newTab) {
      a.target = '_blank';
      a.rel = 'noopener';
    }
    return a;
  }

  function age(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
    return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
  }

  function cell(row, content, className) {
    const td = document.createElement('td');
    if (className) td.className = className;
    if (typeof content === 'string') td.textContent = content;
    else td.append(...content);
    row.append(td);
    return td;
  }

  function render(sessions) {
    const current = window.rpty ? window.rpty.sessionID : '';
    list.replaceChildren();
    const head = document.createElement('tr');
    for (const h of ['command', 'title', 'age', 'clients', '']) {
      const th = document.createElement('th');
      th.textContent = h;
      head.append(th);
    }
    list.append(head);
    for (const s of sessions) {
      const row = document.createElement('tr');
      row.dataset.id = s.id;
      if (s.id === current) row.className = 'current';
      cell(row, s.command || 'login shell', 'sessions-command').title = s.id + ' · ' + s.backend + ' · pid ' + s.pid;
      cell(row, s.title || '', 'sessions-title');
      cell(row, age(s.age_seconds), 'sessions-age');
      cell(row, String(s.connections) + (s.read_only ? ' (' + s.read_only + ' viewing)' : ''), 'sessions-clients');

      const open = link('open', pageURL(s.id, false), false);
      open.dataset.action = 'open';
      const tab = link('↗', pageURL(s.id, false), true);
      tab.title = 'open in a new tab';
      tab.dataset.action = 'open-tab';
      const view = link('view', pageURL(s.id, true), true);
      view.title = 'watch read-only in a new tab';
      view.dataset.action = 'view';
      const close = document.createElement('button');
      close.type = 'button';
      close.textContent = 'close';
      close.title = 'end this session and its processes';
      close.dataset.action = 'close';
      close.addEventListener('click', () => closeSession(s.id, close));
      cell(row, [open, ' ', tab, ' ', view, ' ', close], 'sessions-do');
      list.append(row);
    }
    note.textContent = sessions.length === 0 ? 'no live sessions' : '';
  }

  function load() {
    return fetch('sessions', { cache: 'no-store' })
      .then((res) => {
        if (!res.ok) throw new Error('HTTP ' + res.status);
        return res.json();
      })
      .then((sessions) => {
        loads++;
        render(sessions);
      })
      .catch((err) => {
        note.textContent = 'cannot list sessions: ' + err.message;
      });
  }

  function closeSession(id, button) {
    button.disabled = true;
    fetch('sessions/' + encodeURIComponent(id), { method: 'DELETE' })
      .then((res) => {
        if (!res.ok && res.status !== 404) throw new Error('HTTP ' + res.status);
      })
      .catch((err) => {
        note.textContent = 'cannot close: ' + err.message;
      })
      .finally(load);
  }

  function setOpen(open) {
    menu.hidden = !open;
    toggle.setAttribute('aria-expanded', String(open));
    clearInterval(timer);
    timer = 0;
    if (open) {
      load();
      timer = setInterval(load, POLL_MS);
    } else if (window.rpty) {
      window.rpty.term.focus();
    }
  }

  // A viewer whose session ended has nothing to watch: Enter, which app.js
  // takes for "start a new session", starts it writable, as a fresh page.
  if (viewing) {
    window.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && window.rpty && window.rpty.state === 'ended') {
        ev.preventDefault();
        ev.stopPropagation();
        location.assign(pageURL(null, false));
      }
    }, true);
  }

  toggle.addEventListener('click', () => setOpen(menu.hidden));
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && !menu.hidden) setOpen(false);
  });

  // For tests and the console.
  window.rptySessions = {
    open: () => setOpen(true),
    close: () => setOpen(false),
    get loads() { return loads; },
    viewing: viewing,
  };
})();
