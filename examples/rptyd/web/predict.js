// Predictive echo for slow links, as mosh does it: a printable key typed at
// the end of the line is drawn at once, underlined, in a layer over the
// terminal, until the program's own echo puts the same character in the
// same cell. The layer is never written into xterm.js, so the terminal
// always holds exactly what the program drew; a wrong guess is undone by
// clearing the layer.
//
// Guesses are shown only once the program has confirmed one in the
// current epoch. An epoch starts with the page, with every key other than a
// printable one, backspace or a cursor key (Enter, Ctrl-anything), and with
// every wrong guess; until the echo of one of its keys comes back, its
// guesses are kept but not drawn. A password prompt, `stty -echo`, or a
// program that draws the key elsewhere (readline's history search) never
// confirms one, so nothing is ever drawn there. Nothing is predicted on the
// alternate screen (vim, less, top) or while the view is scrolled back.
//
// It turns itself on when the measured round trip (the link extension's
// heartbeat, link.js) is at least a threshold: ?predict=auto (the default)
// with ?predict_ms=30; ?predict=on predicts whatever the round trip,
// ?predict=off never.
(function () {
  'use strict';

  const DEFAULT_THRESHOLD_MS = 30;
  // A guess the program has not confirmed after this long (or three round
  // trips, if longer) is taken for wrong.
  const STALE_MS = 1000;

  // attach adds prediction to term. rtt() is the path's round trip in ms
  // (0: unknown): the least of the last few heartbeats'. It returns the hooks app.js calls.
  function attach(term, rtt, params) {
    const mode = ['on', 'off', 'auto'].includes(params.get('predict')) ? params.get('predict') : 'auto';
    const ms = Number(params.get('predict_ms'));
    const threshold = params.get('predict_ms') !== null && ms >= 0 ? ms : DEFAULT_THRESHOLD_MS;

    // pending: the guesses of this epoch, in typing order: the character,
    // its cell (buffer row from the top of the screen, column), the cell's
    // character before it, and when it was typed. shift: cursor keys
    // typed since the last guess, as a column offset.
    let pending = [];
    let confirmed = false;
    let shift = 0;
    const stats = { predicted: 0, confirmed: 0, wrong: 0, stale: 0, epochs: 0 };

    const layer = document.createElement('div');
    layer.className = 'rpty-predict';
    layer.setAttribute('aria-hidden', 'true');
    layer.style.fontFamily = term.options.fontFamily;
    layer.style.fontSize = term.options.fontSize + 'px';
    const screen = term.element.querySelector('.xterm-screen');
    screen.appendChild(layer);

    function on() {
      if (mode === 'off') return false;
      if (mode === 'auto' && !(rtt() >= threshold)) return false;
      const buf = term.buffer.active;
      return buf.type === 'normal' && buf.viewportY === buf.baseY;
    }

    function newEpoch() {
      if (pending.length > 0 || confirmed) stats.epochs++;
      pending = [];
      confirmed = false;
      shift = 0;
    }

    function cellChars(y, x) {
      const line = term.buffer.active.getLine(term.buffer.active.baseY + y);
      const cell = line && line.getCell(x);
      return cell ? cell.getChars() : '';
    }

    // blankFrom reports whether row y holds nothing from column x on:
    // guesses are made only at the end of the line, where typing a key
    // does not move other text.
    function blankFrom(y, x) {
      for (let i = x; i < term.cols; i++) {
        const c = cellChars(y, i);
        if (c !== '' && c !== ' ') return false;
      }
      return true;
    }

    function next() {
      if (pending.length > 0) {
        const last = pending[pending.length - 1];
        return { y: last.y, x: last.x + 1 + shift };
      }
      const buf = term.buffer.active;
      return { y: buf.cursorY, x: buf.cursorX + shift };
    }

    // typed is called with what the user typed, before it is sent.
    function typed(data) {
      if (!on()) {
        newEpoch();
        render();
        return;
      }
      if (data === '\x1b[D' || data === '\x1bOD') {
        shift--;
      } else if (data === '\x1b[C' || data === '\x1bOC') {
        shift++;
      } else if (data === '\x7f' || data === '\b') {
        if (pending.length > 0 && shift === 0) pending.pop();
        else newEpoch();
      } else if (data.length === 1 && data >= ' ' && data <= '~') {
        const at = next();
        if (at.x < 0 || at.x >= term.cols - 1 || !blankFrom(at.y, at.x)) {
          newEpoch();
        } else {
          pending.push({ ch: data, y: at.y, x: at.x, before: cellChars(at.y, at.x), at: performance.now() });
          shift = 0;
          stats.predicted++;
        }
      } else {
        newEpoch();
      }
      render();
    }

    // written is called once xterm.js has parsed output: guesses the
    // program drew are dropped, a wrong or stale one ends the epoch.
    function written() {
      if (pending.length === 0 && shift === 0) return;
      const buf = term.buffer.active;
      if (buf.type !== 'normal') {
        newEpoch();
        render();
        return;
      }
      while (pending.length > 0) {
        const p = pending[0];
        const ch = cellChars(p.y, p.x);
        const moved = buf.cursorY !== p.y || buf.cursorX > p.x;
        if (ch === p.ch && (p.before !== p.ch || moved)) {
          pending.shift();
          confirmed = true;
          stats.confirmed++;
          continue;
        }
        if (moved) {
          // The program went past the cell and drew something else.
          stats.wrong++;
          newEpoch();
        }
        break;
      }
      if (pending.length > 0 && performance.now() - pending[0].at > Math.max(STALE_MS, 3 * rtt())) {
        stats.stale++;
        newEpoch();
      }
      if (pending.length === 0) shift = 0;
      render();
    }

    function render() {
      if (!confirmed || pending.length === 0) {
        if (layer.firstChild) layer.replaceChildren();
        return;
      }
      const cw = screen.clientWidth / term.cols;
      const ch = screen.clientHeight / term.rows;
      const spans = pending.map((p) => {
        const s = document.createElement('span');
        s.textContent = p.ch;
        s.style.left = (p.x * cw) + 'px';
        s.style.top = (p.y * ch) + 'px';
        s.style.width = cw + 'px';
        s.style.height = ch + 'px';
        s.style.lineHeight = ch + 'px';
        return s;
      });
      layer.replaceChildren(...spans);
    }

    term.onWriteParsed(written);
    term.onResize(() => {
      newEpoch();
      render();
    });
    term.onScroll(() => {
      if (!on()) {
        newEpoch();
        render();
      }
    });

    return {
      typed: typed,
      reset: () => {
        newEpoch();
        render();
      },
      // For tests: what is drawn now (row, column, character), and counts.
      shown: () => (confirmed ? pending.map((p) => ({ y: p.y, x: p.x, ch: p.ch })) : []),
      active: on,
      stats: stats,
      mode: mode,
      threshold: threshold,
    };
  }

  window.RptyPredict = { attach: attach };
})();
