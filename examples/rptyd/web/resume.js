// The resume extension's header, read off the front of one connection's
// output (docs/PROTOCOL.md). A client that sends Resume gets, before
// anything else, one APC string:
//
//   ESC _ rpty;v=1;mode=delta;offset=N ESC \         the session's output from offset N follows
//   ESC _ rpty;v=1;mode=reset;offset=N;len=L ESC \   L bytes redraw the screen, then output from N
//
// A server without the extension ignores Resume and sends the output as
// before, with no header. The header may arrive split across any number of
// WebSocket messages, so the reader holds bytes back until it can tell.
//
// Loaded by the page as a plain script (window.RptyResume), and by Node for
// its tests (module.exports).
(function (root) {
  'use strict';

  // ESC _ r p t y ;
  const PREFIX = [0x1b, 0x5f, 0x72, 0x70, 0x74, 0x79, 0x3b];
  const ESC = 0x1b;
  const ST_FINAL = 0x5c; // the backslash of ST (ESC \)
  // A real header is under 80 bytes; anything this long is not one.
  const MAX_HEADER = 256;
  const DIGITS = /^[0-9]+$/;

  function parseNumber(name, s) {
    if (s === undefined) throw new Error('no ' + name);
    const n = Number(s);
    if (!DIGITS.test(s) || !Number.isSafeInteger(n)) throw new Error(name + ' ' + JSON.stringify(s) + ' is not an unsigned integer');
    return n;
  }

  // parseBody parses what lies between "ESC _ rpty;" and "ESC \". Keys the
  // page does not know are ignored; a version other than 1 is refused.
  function parseBody(body) {
    const fields = {};
    for (const kv of body.split(';')) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new Error('field ' + JSON.stringify(kv) + ' is not key=value');
      const k = kv.slice(0, eq);
      if (Object.prototype.hasOwnProperty.call(fields, k)) throw new Error('field ' + k + ' repeated');
      fields[k] = kv.slice(eq + 1);
    }
    if (fields.v !== '1') throw new Error('version ' + JSON.stringify(fields.v) + ', want 1');
    const offset = parseNumber('offset', fields.offset);
    switch (fields.mode) {
      case 'delta':
        return { kind: 'delta', offset: offset };
      case 'reset':
        return { kind: 'reset', offset: offset, len: parseNumber('len', fields.len) };
      default:
        throw new Error('mode ' + JSON.stringify(fields.mode) + ', want delta or reset');
    }
  }

  // Reader splits one connection's output into parts, in order:
  //
  //   {kind: 'plain', data}         no header came: the server ignored Resume
  //                                 (this and all later data is output as before)
  //   {kind: 'delta', offset}       then {kind: 'output', data}...
  //   {kind: 'reset', offset, len}  then {kind: 'redraw', data}... (len bytes
  //                                 in all), then {kind: 'output', data}...
  //   {kind: 'error', message}      a header the page cannot read; nothing
  //                                 else comes from this reader
  //
  // The data of a part may be a view of the chunk passed to push.
  class Reader {
    constructor() {
      this.state = 'prefix'; // prefix, header, redraw, output, plain, failed
      this.held = []; // bytes of the header so far
      this.redrawLeft = 0;
    }

    // push takes the next chunk of output (a Uint8Array) and returns the
    // parts it completes.
    push(chunk) {
      const parts = [];
      let i = 0;
      while (i < chunk.length) {
        switch (this.state) {
          case 'prefix': {
            const b = chunk[i];
            if (b !== PREFIX[this.held.length]) {
              // Not a header: give back what was held, then the rest.
              this.state = 'plain';
              const held = Uint8Array.from(this.held);
              this.held = [];
              if (held.length > 0) parts.push({ kind: 'plain', data: held });
              continue;
            }
            this.held.push(b);
            i++;
            if (this.held.length === PREFIX.length) this.state = 'header';
            break;
          }
          case 'header': {
            const b = chunk[i++];
            const prev = this.held[this.held.length - 1];
            this.held.push(b);
            if (prev === ESC) {
              if (b !== ST_FINAL) return this.fail(parts, 'ESC inside the header');
              const body = String.fromCharCode.apply(null, this.held.slice(PREFIX.length, -2));
              this.held = [];
              let h;
              try {
                h = parseBody(body);
              } catch (e) {
                return this.fail(parts, 'bad header "rpty;' + body + '": ' + e.message);
              }
              parts.push(h);
              this.redrawLeft = h.kind === 'reset' ? h.len : 0;
              this.state = this.redrawLeft > 0 ? 'redraw' : 'output';
            } else if (b !== ESC && (b < 0x20 || b > 0x7e)) {
              return this.fail(parts, 'byte 0x' + b.toString(16).padStart(2, '0') + ' inside the header');
            } else if (this.held.length > MAX_HEADER) {
              return this.fail(parts, 'header longer than ' + MAX_HEADER + ' bytes');
            }
            break;
          }
          case 'redraw': {
            const n = Math.min(this.redrawLeft, chunk.length - i);
            parts.push({ kind: 'redraw', data: chunk.subarray(i, i + n) });
            i += n;
            this.redrawLeft -= n;
            if (this.redrawLeft === 0) this.state = 'output';
            break;
          }
          case 'output':
          case 'plain':
            parts.push({ kind: this.state, data: i === 0 ? chunk : chunk.subarray(i) });
            i = chunk.length;
            break;
          default: // failed
            return parts;
        }
      }
      return parts;
    }

    fail(parts, message) {
      this.state = 'failed';
      this.held = [];
      parts.push({ kind: 'error', message: message });
      return parts;
    }
  }

  const api = { Reader: Reader };
  if (typeof module === 'object' && module.exports) {
    module.exports = api;
  } else {
    root.RptyResume = api;
  }
})(typeof globalThis !== 'undefined' ? globalThis : this);
