// The link extension (docs/PROTOCOL.md, "Extension: link"): frames the
// server sends a page that gave a link ID, among the output and first of
// all, saying how much of the page's input the program has taken (in=N)
// and answering its heartbeats (pong=T):
//
//   ESC _ rpty;v=1;link=ID;in=N[;pong=T] ESC \
//
// They are not output: the reader takes them out before anything else.
// A server with the extension starts every connection with one, so the
// first bytes tell whether it has it.
//
// Loaded by the page as a plain script (window.RptyLink), and by Node for
// its tests (module.exports).
(function (root) {
  'use strict';

  const ESC = 0x1b;
  const MAX_FRAME = 96; // after the prefix
  const DIGITS = /^[0-9]+$/;
  const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

  // newID is a random link ID: 22 characters of base64url.
  function newID() {
    const b = new Uint8Array(22);
    crypto.getRandomValues(b);
    let s = '';
    for (const v of b) s += ID_CHARS[v & 63];
    return s;
  }

  function concat(a, b) {
    if (a.length === 0) return b;
    const out = new Uint8Array(a.length + b.length);
    out.set(a, 0);
    out.set(b, a.length);
    return out;
  }

  function parseFrame(body) {
    const f = { in: null, pong: null };
    for (const kv of body.split(';')) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new Error('link frame field ' + JSON.stringify(kv) + ' is not key=value');
      const k = kv.slice(0, eq);
      const v = kv.slice(eq + 1);
      if (k !== 'in' && k !== 'pong') continue;
      if (!DIGITS.test(v) || !Number.isSafeInteger(Number(v))) throw new Error('link frame ' + k + ' ' + JSON.stringify(v));
      f[k] = Number(v);
    }
    if (f.in === null) throw new Error('link frame without in');
    return f;
  }

  // Reader takes one connection's frames out of its output. push returns
  // { out, frames }; first is null until the first bytes decide whether
  // the server has the extension, then true or false.
  class Reader {
    constructor(id) {
      this.prefix = new TextEncoder().encode('\x1b_rpty;v=1;link=' + id + ';');
      this.held = new Uint8Array(0);
      this.first = null;
    }

    matchAt(buf, i) {
      // How many bytes of the prefix match at i: all, or all there are.
      const n = Math.min(buf.length - i, this.prefix.length);
      for (let k = 0; k < n; k++) {
        if (buf[i + k] !== this.prefix[k]) return -1;
      }
      return n;
    }

    push(chunk) {
      let buf = concat(this.held, chunk);
      this.held = new Uint8Array(0);
      const frames = [];
      if (this.first === null) {
        const n = this.matchAt(buf, 0);
        if (n < 0) this.first = false;
        else if (n === this.prefix.length) this.first = true;
        else {
          this.held = buf;
          return { out: new Uint8Array(0), frames };
        }
      }
      if (!this.first) return { out: buf, frames };
      const parts = [];
      let start = 0;
      let i = 0;
      while (i < buf.length) {
        i = buf.indexOf(ESC, i);
        if (i < 0) break;
        const n = this.matchAt(buf, i);
        if (n < 0) {
          i++;
          continue;
        }
        if (n < this.prefix.length) {
          parts.push(buf.subarray(start, i));
          this.held = buf.slice(i);
          start = buf.length;
          break;
        }
        const body = i + this.prefix.length;
        let end = -1;
        for (let k = body; k + 1 < buf.length && k < body + MAX_FRAME; k++) {
          if (buf[k] === ESC && buf[k + 1] === 0x5c) {
            end = k;
            break;
          }
        }
        if (end < 0) {
          if (buf.length - body >= MAX_FRAME) throw new Error('link frame without terminator');
          parts.push(buf.subarray(start, i));
          this.held = buf.slice(i);
          start = buf.length;
          break;
        }
        parts.push(buf.subarray(start, i));
        frames.push(parseFrame(new TextDecoder().decode(buf.subarray(body, end))));
        i = end + 2;
        start = i;
      }
      if (start < buf.length) parts.push(buf.subarray(start));
      let out = new Uint8Array(0);
      for (const p of parts) out = concat(out, p);
      return { out, frames };
    }
  }

  const api = { Reader, newID };
  if (typeof module !== 'undefined' && module.exports) module.exports = api;
  else root.RptyLink = api;
})(typeof window !== 'undefined' ? window : this);
