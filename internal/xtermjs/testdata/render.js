#!/usr/bin/env node
// Renders byte streams with headless xterm.js for the Go differential tests
// (package internal/xtermjs). It is a long-running process:
//
//   stdin:  one JSON request a line:
//           {"id": N, "rows": R, "cols": C, "scrollback": S, "chunks": ["<base64>", ...],
//            "resizes": [{"before": I, "cols": C, "rows": R}, ...],   (optional)
//            "scrollbackCells": true}   (optional: dump the scrollback's cells too)
//   stdout: one JSON answer a line, in request order:
//           {"id": N, "state": {...}}  or  {"id": N, "error": "..."}
//
// For each request it builds a fresh Terminal, loads the unicode11 addon and
// makes version 11 active (as the web client does), writes the chunks in
// order through the public write() (so chunk boundaries, split UTF-8 and
// split escape sequences behave as in a browser), resizes the terminal
// before chunk I for each {"before": I} (I may be the number of chunks: a
// resize at the end), waits for the last write's callback and prints the
// State that xtermjs/state.go decodes. Requests are
// worked on concurrently (each terminal waits on its own write timer) but
// answered in order.
//
// Nothing else may write to stdout: console output goes to stderr.
//
// xterm.js internals relied on (names from @xterm/headless 6.0.0's source;
// the public API does not expose them):
//   term._core                               the CoreTerminal behind the public Terminal
//   _core.coreService.isCursorHidden         DECTCEM (?25) state
//   _core.coreService.decPrivateModes.cursorStyle / .cursorBlink
//                                            DECSCUSR; undefined means "the option's value"
//   _core.optionsService.rawOptions.cursorStyle / .cursorBlink
//                                            the option fallbacks (?12 sets cursorBlink there)
//   _core.coreMouseService.activeEncoding    'DEFAULT' | 'SGR' | 'SGR_PIXELS'
//   _core._bufferService.buffer              the active Buffer, with
//       .scrollTop, .scrollBottom            the scroll region (0-based, inclusive)
//       .savedX, .savedY                     the DECSC-saved cursor
//       .tabs                                {column: true} for each tab stop
//   _core._inputHandler._curAttrData         the pen (an AttributeData: fg, bg, extended)
//   _core._charsetService._charsets[0..3]    G0..G3 designations (charset tables, undefined = ASCII)
//   _core._charsetService.glevel             the G set invoked into GL
//   _core._oscLinkService.getLinkData(urlId) an OSC 8 link's {id, uri} (undefined once
//                                            dropped with the line it was opened on)
//   cell.extended.urlId, _curAttrData.extended.urlId
//                                            the link a cell (with BG HAS_EXTENDED) or the pen holds
//   cell.extended.underlineColor, _curAttrData.extended.underlineColor
//                                            the raw SGR 58 colour, same layout as fg
//   _core._inputHandler.selectCharset('(' + F)
//                                            used once at start-up on a scratch terminal to
//                                            learn which table each final byte F designates
//   CellData (from the public getCell) and AttributeData share the raw
//   fg/bg bit layout of common/buffer/Constants.ts (Attributes, FgFlags,
//   BgFlags) and getUnderlineStyle().
'use strict';

const readline = require('readline');
const { Terminal } = require('@xterm/headless');
const { Unicode11Addon } = require('@xterm/addon-unicode11');

// Keep stdout for answers only.
for (const k of ['log', 'info', 'warn', 'error', 'debug', 'trace']) {
  console[k] = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
}

// Raw attribute bits (common/buffer/Constants.ts).
const CM_MASK = 0x3000000;
const CM_P16 = 0x1000000;
const CM_P256 = 0x2000000;
const CM_RGB = 0x3000000;
const FG_INVERSE = 0x4000000;
const FG_BOLD = 0x8000000;
const FG_UNDERLINE = 0x10000000;
const FG_BLINK = 0x20000000;
const FG_INVISIBLE = 0x40000000;
const FG_STRIKETHROUGH = 0x80000000;
const BG_ITALIC = 0x4000000;
const BG_DIM = 0x8000000;
const BG_OVERLINE = 0x40000000;
const BG_HAS_EXTENDED = 0x10000000;

// Cell.Flags bits of state.go.
const A_BOLD = 1, A_DIM = 2, A_ITALIC = 4, A_UNDERLINE = 8, A_BLINK = 16,
  A_INVERSE = 32, A_INVISIBLE = 64, A_STRIKE = 128, A_OVERLINE = 256;

// Cell colours of state.go: -1 default, 0..15 a 16-colour index (SGR
// 30-37, 90-97), 1<<25 | index a 256-colour one (SGR 38;5;N), 1<<24 | RGB.
function colour(v) {
  switch (v & CM_MASK) {
    case CM_P16: return v & 0xff;
    case CM_P256: return (1 << 25) | (v & 0xff);
    case CM_RGB: return (1 << 24) | (v & 0xffffff);
    default: return -1;
  }
}

function flags(fg, bg) {
  let f = 0;
  if (fg & FG_BOLD) f |= A_BOLD;
  if (bg & BG_DIM) f |= A_DIM;
  if (bg & BG_ITALIC) f |= A_ITALIC;
  if (fg & FG_UNDERLINE) f |= A_UNDERLINE;
  if (fg & FG_BLINK) f |= A_BLINK;
  if (fg & FG_INVERSE) f |= A_INVERSE;
  if (fg & FG_INVISIBLE) f |= A_INVISIBLE;
  if ((fg & FG_STRIKETHROUGH) !== 0) f |= A_STRIKE;
  if (bg & BG_OVERLINE) f |= A_OVERLINE;
  return f;
}

// Links numbers the OSC 8 links of one dump 1, 2, ... in the order they are
// first met, so that two dumps compare by what the links are (target, id,
// which cells share one) and not by xterm.js's internal ids.
class Links {
  constructor(core) {
    this.core = core;
    this.index = new Map(); // urlId -> number
    this.list = []; // {URI, ID}; URI "" for a link whose data xterm.js dropped
  }
  of(urlId) {
    if (!urlId) return 0;
    let n = this.index.get(urlId);
    if (n === undefined) {
      const d = this.core._oscLinkService.getLinkData(urlId);
      this.list.push({ URI: d ? d.uri : '', ID: d && d.id !== undefined ? d.id : '' });
      n = this.list.length;
      this.index.set(urlId, n);
    }
    return n;
  }
}

// attrs is a CellData (link: its extended attributes count only while its
// BG says it has them) or the pen (link: the one it holds).
function cellOf(chars, width, attrs, links, isPen) {
  let link = 0;
  let ulColour = -1;
  if ((isPen || (attrs.bg & BG_HAS_EXTENDED)) && attrs.extended) {
    link = links.of(attrs.extended.urlId);
    ulColour = colour(attrs.extended.underlineColor);
  }
  return [chars, width, colour(attrs.fg), colour(attrs.bg), flags(attrs.fg, attrs.bg), attrs.getUnderlineStyle(), link,
    ulColour];
}

function dumpLines(buf, from, count, links) {
  const lines = [];
  const wrapped = [];
  let cell;
  for (let y = from; y < from + count; y++) {
    const line = buf.getLine(y);
    const row = [];
    if (!line) {
      lines.push(row);
      wrapped.push(false);
      continue;
    }
    for (let x = 0; x < line.length; x++) {
      cell = line.getCell(x, cell);
      row.push(cellOf(cell.getChars(), cell.getWidth(), cell, links, false));
    }
    lines.push(row);
    wrapped.push(line.isWrapped);
  }
  return { lines, wrapped };
}

// The charset tables are module singletons, so a designation is known by
// identity: probe each final byte xterm.js registers once, keeping the first
// letter of aliases ('C' for '5', 'E' for '6', 'H' for '7').
const CHARSET_FINALS = ['0', 'A', 'B', '4', 'C', '5', 'R', 'Q', 'K', 'Y', 'E', '6', 'Z', 'H', '7', '='];
let charsetLetters;
function probeCharsets() {
  const t = new Terminal({ rows: 2, cols: 2, allowProposedApi: true });
  const m = new Map();
  for (const f of CHARSET_FINALS) {
    t._core._inputHandler.selectCharset('(' + f);
    const cs = t._core._charsetService._charsets[0];
    if (cs !== undefined && !m.has(cs)) m.set(cs, f);
  }
  t.dispose();
  return m;
}

function charsetName(cs) {
  if (cs === undefined || cs === null) return '';
  const l = charsetLetters.get(cs);
  return l === undefined ? '?' : l;
}

function cursorStyleOf(core) {
  const dec = core.coreService.decPrivateModes;
  const opts = core.optionsService.rawOptions;
  const style = dec.cursorStyle !== undefined ? dec.cursorStyle : opts.cursorStyle;
  const blink = dec.cursorBlink !== undefined ? dec.cursorBlink : opts.cursorBlink;
  return { style: style || 'block', blink: !!blink };
}

function mouseEncodingOf(core) {
  switch (core.coreMouseService.activeEncoding) {
    case 'SGR': return 'sgr';
    case 'SGR_PIXELS': return 'sgr_pixels';
    default: return 'default';
  }
}

function dump(term, title, scrollbackCells) {
  const core = term._core;
  const active = term.buffer.active;
  const normal = term.buffer.normal;
  const buf = core._bufferService.buffer;
  const rows = term.rows;

  const links = new Links(core);
  const screen = dumpLines(active, active.baseY, rows, links);
  const sbLines = [];
  const sbWrapped = [];
  for (let y = 0; y < normal.baseY; y++) {
    const line = normal.getLine(y);
    sbLines.push(line.translateToString(true));
    sbWrapped.push(line.isWrapped);
  }
  let normalLines;
  if (active.type === 'alternate') {
    normalLines = dumpLines(normal, normal.baseY, rows, links).lines;
  }
  const cur = cursorStyleOf(core);
  const m = term.modes;
  const pen = cellOf('', 0, core._inputHandler._curAttrData, links, true);
  const cs = core._charsetService;
  const tabs = Object.keys(buf.tabs).filter(k => buf.tabs[k]).map(Number).sort((a, b) => a - b);

  const st = {
    Rows: rows,
    Cols: term.cols,
    Buffer: active.type,
    CursorX: active.cursorX,
    CursorY: active.cursorY,
    CursorVisible: !core.coreService.isCursorHidden,
    CursorStyle: cur.style,
    CursorBlink: cur.blink,
    Title: title,
    Modes: {
      ApplicationCursorKeys: m.applicationCursorKeysMode,
      ApplicationKeypad: m.applicationKeypadMode,
      BracketedPaste: m.bracketedPasteMode,
      Insert: m.insertMode,
      Origin: m.originMode,
      Wraparound: m.wraparoundMode,
      ReverseWraparound: m.reverseWraparoundMode,
      SendFocus: m.sendFocusMode,
      MouseTracking: m.mouseTrackingMode,
      MouseEncoding: mouseEncodingOf(core),
    },
    ScrollTop: buf.scrollTop,
    ScrollBottom: buf.scrollBottom,
    Lines: screen.lines,
    Wrapped: screen.wrapped,
    Scrollback: sbLines,
    ScrollbackWrapped: sbWrapped,
    Pen: pen,
    SavedX: buf.savedX,
    SavedY: buf.savedY,
    Charsets: [0, 1, 2, 3].map(g => charsetName(cs._charsets[g])),
    GL: cs.glevel,
    Tabs: tabs,
    Links: links.list,
  };
  if (normalLines) st.NormalLines = normalLines;
  if (scrollbackCells) {
    // After the pen, so that the links the screen shows keep their numbers.
    st.ScrollbackCells = dumpLines(normal, 0, normal.baseY, links).lines;
  }
  return st;
}

function bytesOf(c) {
  return new Uint8Array(c.buffer, c.byteOffset, c.length);
}

async function render(req) {
  const term = new Terminal({
    rows: req.rows,
    cols: req.cols,
    scrollback: req.scrollback,
    allowProposedApi: true,
  });
  try {
    term.loadAddon(new Unicode11Addon());
    term.unicode.activeVersion = '11';
    let title = '';
    term.onTitleChange(t => { title = t; });
    const chunks = (req.chunks || []).map(c => Buffer.from(c, 'base64'));
    const resizes = req.resizes || [];
    if (resizes.length === 0) {
      // write() keeps each chunk a separate parse call; the callbacks run
      // in order, so the last one means every chunk is parsed.
      if (chunks.length > 0) {
        await new Promise(done => chunks.forEach((c, i) =>
          term.write(bytesOf(c), i === chunks.length - 1 ? done : undefined)));
      }
    } else {
      // resize() acts at once, even on data still queued for parsing, so
      // each chunk is parsed before the next resize.
      let r = 0;
      for (let i = 0; i <= chunks.length; i++) {
        for (; r < resizes.length && resizes[r].before === i; r++) {
          term.resize(resizes[r].cols, resizes[r].rows);
        }
        if (i < chunks.length) {
          await new Promise(done => term.write(bytesOf(chunks[i]), done));
        }
      }
      if (r < resizes.length) {
        throw new Error(`resize before chunk ${resizes[r].before} is out of order or range`);
      }
    }
    return dump(term, title, !!req.scrollbackCells);
  } finally {
    term.dispose();
  }
}

// How many terminals may be waiting on their write timers at once.
const MAX_IN_FLIGHT = 32;

function main() {
  charsetLetters = probeCharsets();
  const queue = []; // parsed requests not yet started
  const answers = []; // promises of answer lines, in request order
  let inFlight = 0;
  let ended = false;

  const pump = () => {
    while (inFlight < MAX_IN_FLIGHT && queue.length > 0) {
      const req = queue.shift();
      inFlight++;
      const p = render(req).then(
        state => JSON.stringify({ id: req.id, state }),
        err => JSON.stringify({ id: req.id, error: String(err && err.stack || err) }));
      answers.push(p);
      p.then(() => { inFlight--; flush(); pump(); });
    }
  };
  let flushing = false;
  const flush = async () => {
    if (flushing) return;
    flushing = true;
    while (answers.length > 0) {
      const line = await answers[0];
      answers.shift();
      process.stdout.write(line + '\n');
    }
    flushing = false;
    if (ended && queue.length === 0 && inFlight === 0) done();
  };
  // Exit once every answer is out: ending stdout first, because exiting
  // with a large write still queued on the pipe would cut it short.
  const done = () => {
    process.stdout.end(() => process.exit(0));
  };

  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  rl.on('line', line => {
    if (line.trim() === '') return;
    let req;
    try {
      req = JSON.parse(line);
    } catch (e) {
      // Answered in its turn, so the answers stay in request order.
      answers.push(Promise.resolve(JSON.stringify({ id: -1, error: 'bad request: ' + e.message })));
      flush();
      return;
    }
    queue.push(req);
    pump();
  });
  rl.on('close', () => {
    ended = true;
    if (queue.length === 0 && inFlight === 0 && answers.length === 0) done();
  });
}

main();
