/* tickerd.js: live records from tickerd, for any page served beside it (same origin: tickerd
 * sends no CORS headers). ES5 on purpose: the long-polling fallback exists for old browsers
 * without EventSource.
 *
 *   <script src="tickerd.js"></script>
 *   <script>
 *     var feed = tickerd.connect({
 *       url: 'ticker',              // the stream, relative to the page (the default)
 *       symbols: ['AAPL', 'MSFT'],  // or 'AAPL,MSFT'; omit for the server's default symbol
 *                                   // (then the callbacks' symbol is null)
 *       fields: ['bid', 'ask'],     // or 'bid,ask': only these fields (fields=); omit for all
 *       maxHz: 2,                   // at most this many rounds of updates a second (max_hz=)
 *       longPoll: undefined,        // true: long polls only; false: EventSource whenever the
 *                                   // browser has it; undefined: long polls when the page's
 *                                   // URL has ?longpoll
 *       onRecord: function (symbol, record, changed, id, previous) {},
 *       onUpdate: function (symbol, price, id) {},  // the headline alone, when it changed
 *       onState: function (state, transport) {},    // on any change of either, see below
 *       onError: function (status, message) {},     // a 4xx answer: bad or unknown symbols,
 *                                                   // unknown fields, a bad maxHz
 *       headline: 'price'           // the headline's name (see below)
 *     });
 *     feed.setSymbols(['AAPL', 'NVDA']);  // reconnect with this list; new ones get a snapshot
 *     feed.record('AAPL');                // its record as last handed out, or null
 *     feed.close();                       // for good
 *     tickerd.schema(function (schema, status) {});  // GET fields (a second argument: its URL)
 *   </script>
 *
 * Records. tickerd sends each symbol's fields with values at first (the snapshot), then only
 * the fields that changed. The feed merges them into one record per symbol and calls
 * onRecord(symbol, record, changed, id, previous) once per event that changed something:
 * record is every field the symbol has so far ({last: '189.20', bid: '189.19', time:
 * 1765100000123}), a new object each call, yours to keep; changed the names of the fields
 * this event changed, in the server's order; previous their values before (undefined for a
 * field seen for the first time); id the event's own id, or null when it carried none
 * (tickerd leaves some out; see below). price and qty values are strings of exact decimal
 * text at the symbol's precision: show them as they are, never through a float
 * (tickerd.decimal below does arithmetic on them); int and time values are numbers (time: ms
 * since the epoch). An event that changes no value (a repeat: a catch-up poll's answer, then
 * the new stream's snapshot) is dropped.
 *
 * onUpdate is the older, single-price callback: called when an event changes the headline,
 * with its text. The headline is a JSON event's `headline` field (the schema's first one),
 * and the whole text of a plain event (the stream without symbols): pass headline:
 * schema.headline when the schema is not `price:price`.
 *
 * tickerd.schema(done, url) asks tickerd for its schema (GET `fields`, relative to the page,
 * or url): done({headline: 'last', fields: [{name: 'last', type: 'price'}, …]}, 200), or
 * done(null, status) when tickerd did not answer with one (status 0: no answer). Types:
 * price, qty, int, time.
 *
 * tickerd.decimal works on decimal texts with digit arithmetic, so that no float rounds:
 * sub(a, b) is a - b at the larger of their scales (sub('1.08346', '1.08344') is
 * '0.00002'), sub(a, b, n) at n decimals at least; cmp(a, b) is -1, 0 or 1; scale(a) counts
 * a's decimals. Each gives null (cmp: NaN) for a text that is not a decimal.
 *
 * state: 'connecting', 'live' (EventSource), 'long-polling', 'reconnecting', 'idle' (an
 * empty list: nothing asked), 'closed'. transport: 'EventSource', 'long poll (catching up)',
 * 'long polling (no EventSource)', 'long polling (?longpoll)', 'long polling (asked)'.
 * The feed object also shows: feed.state, feed.transport, feed.symbols (the list, upper
 * case, distinct), feed.lastId() (the last id the transport saw, or null), feed.fallbacks
 * (times EventSource gave up for good and the feed reconnected by itself).
 *
 * Ids. Ids are u64 near 1.8e15, kept as strings (a Number loses precision); tickerd.newer(a,
 * b) compares two. An event may come without an id line: tickerd leaves it out where the
 * event carries a change older than one an earlier event carried, so that the last id a
 * browser has is always a point where it has every change up to it. As in EventSource, the
 * id then stays the previous one; feed.lastId() is that id, the one a reconnection resumes
 * from.
 *
 * Reconnecting. EventSource retries by itself (sending Last-Event-ID) after a dropped
 * connection, but gives up for good after an error answer (503 while tickerd restarts
 * behind a front-end). The feed then reconnects itself with backoff (1 s doubling to 10 s,
 * with jitter; the Retry-After of an error answer to its own requests as a floor, capped at
 * 60 s, plus up to half again): first one long poll carrying the last id (a new EventSource
 * cannot send one), then a new EventSource. A catch-up poll that tickerd holds for more than
 * a second means nothing is missing: it streams again at once. The records stay through all
 * of it: what comes back is merged into them.
 */
(function (global) {
  'use strict';

  var MAX_DELAY = 10000;
  var RETRY_AFTER_CAP_S = 60;
  var POLL_GUARD_MS = 90000;   // a long poll hung in a proxy: ask again
  var HELD_MS = 1000;          // a catch-up poll held this long: the feed is current

  // Whether id a is above id b: decimal strings without leading zeros, compared by length,
  // then lexicographically (no BigInt needed).
  function newer(a, b) {
    if (b === null || b === undefined) return true;
    if (a.length !== b.length) return a.length > b.length;
    return a > b;
  }

  function trim(s) { return s.replace(/^\s+|\s+$/g, ''); }

  // Trimmed, distinct, in the order given; an array, or a string 'AAPL,MSFT'.
  function distinct(list, upper) {
    if (typeof list === 'string') list = list.split(',');
    var out = [], seen = {};
    for (var i = 0; i < list.length; i++) {
      var s = trim(String(list[i]));
      if (upper) s = s.toUpperCase();
      if (s && !seen['$' + s]) { seen['$' + s] = true; out.push(s); }
    }
    return out;
  }

  // Symbols: upper case too.
  function normalize(list) { return distinct(list, true); }

  // The events of an SSE text (a long poll's answer), as {id, own, data}. As in
  // EventSource, an id holds for the events after it until another is given (the first
  // ones: lastId, the one the request sent); own says whether the event gave its own. A
  // last event without its blank line is taken too.
  function parseEvents(text, lastId) {
    var events = [], id = lastId || null, own = false, data = null;
    var lines = text.split(/\r\n|\r|\n/);
    for (var i = 0; i < lines.length; i++) {
      var l = lines[i];
      if (l === '') {
        if (data !== null) events.push({ id: id, own: own, data: data });
        data = null; own = false;
        continue;
      }
      var c = l.indexOf(':');
      if (c === 0) continue;                 // comment
      var f = c < 0 ? l : l.slice(0, c), v = c < 0 ? '' : l.slice(c + 1);
      if (v.charAt(0) === ' ') v = v.slice(1);
      if (f === 'id') { id = v === '' ? null : v; own = id !== null; }
      else if (f === 'data') data = data === null ? v : data + '\n' + v;
    }
    if (data !== null) events.push({ id: id, own: own, data: data });
    return events;
  }

  // ---- exact decimals: digit strings, never a float ----

  // '-12.340' → { neg: true, int: '12', frac: '340' }; null when not a decimal's text.
  function split(text) {
    var m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(trim(String(text)));
    if (!m || m[2] + (m[3] || '') === '') return null;
    return { neg: m[1] === '-', int: m[2], frac: m[3] || '' };
  }

  // The digits of |d| times 10^scale (scale at least d's own), without leading zeros.
  function scaled(d, scale) {
    var f = d.frac;
    while (f.length < scale) f += '0';
    return (d.int + f).replace(/^0+/, '') || '0';
  }

  // Digit strings without leading zeros: compared by length, then as text.
  function cmpDigits(a, b) {
    if (a.length !== b.length) return a.length > b.length ? 1 : -1;
    return a === b ? 0 : a > b ? 1 : -1;
  }

  function addDigits(a, b) {
    var out = '', carry = 0;
    for (var i = a.length - 1, j = b.length - 1; i >= 0 || j >= 0 || carry; i--, j--) {
      var n = (i >= 0 ? +a.charAt(i) : 0) + (j >= 0 ? +b.charAt(j) : 0) + carry;
      carry = n >= 10 ? 1 : 0;
      out = (n % 10) + out;
    }
    return out.replace(/^0+/, '') || '0';
  }

  // a - b for a >= b.
  function subDigits(a, b) {
    var out = '', borrow = 0;
    for (var i = a.length - 1, j = b.length - 1; i >= 0; i--, j--) {
      var n = +a.charAt(i) - (j >= 0 ? +b.charAt(j) : 0) - borrow;
      borrow = n < 0 ? 1 : 0;
      out = (n + 10 * borrow) + out;
    }
    return out.replace(/^0+/, '') || '0';
  }

  // a - b, exact, at the larger of their scales or at least `scale` decimals.
  function sub(a, b, scale) {
    var x = split(a), y = split(b);
    if (!x || !y) return null;
    var n = Math.max(x.frac.length, y.frac.length, scale > 0 ? scale : 0);
    var p = scaled(x, n), q = scaled(y, n);
    // a - b = a + (-b): one sign each.
    var pn = x.neg && p !== '0', qn = !(y.neg && q !== '0') && q !== '0';
    var digits, neg;
    if (pn === qn) { digits = addDigits(p, q); neg = pn; }
    else if (cmpDigits(p, q) >= 0) { digits = subDigits(p, q); neg = pn; }
    else { digits = subDigits(q, p); neg = qn; }
    while (digits.length <= n) digits = '0' + digits;
    var text = n ? digits.slice(0, digits.length - n) + '.' + digits.slice(digits.length - n) : digits;
    return (neg && /[1-9]/.test(digits) ? '-' : '') + text;
  }

  function cmp(a, b) {
    var d = sub(a, b);
    if (d === null) return NaN;
    return !/[1-9]/.test(d) ? 0 : d.charAt(0) === '-' ? -1 : 1;
  }

  function scaleOf(text) {
    var d = split(text);
    return d ? d.frac.length : null;
  }

  // GET fields: tickerd's schema. done(schema, status); schema null when there is none.
  function schema(done, url) {
    var xhr = new XMLHttpRequest();
    xhr.open('GET', url || 'fields', true);
    xhr.onreadystatechange = function () {
      if (xhr.readyState !== 4) return;
      var s = null;
      if (xhr.status === 200) { try { s = JSON.parse(xhr.responseText); } catch (e) { s = null; } }
      if (s && (typeof s.headline !== 'string' || !s.fields || !s.fields.length)) s = null;
      done(s, xhr.status);
    };
    xhr.send();
  }

  // A shallow copy of a record.
  function copy(record) {
    var out = {};
    for (var k in record) if (record.hasOwnProperty(k)) out[k] = record[k];
    return out;
  }

  function connect(opts) {
    opts = opts || {};
    var base = opts.url || 'ticker';
    var onRecord = opts.onRecord || function () {};
    var onUpdate = opts.onUpdate || null;
    var headline = opts.headline || 'price';
    var onState = opts.onState || function () {};
    var onError = opts.onError || function () {};
    var urlAsked = /[?&]longpoll\b/.test(global.location ? global.location.search : '');
    var forced = opts.longPoll === true || (opts.longPoll === undefined && urlAsked);
    var polling = forced || !global.EventSource;
    var pollLabel = !global.EventSource ? 'long polling (no EventSource)' :
      opts.longPoll === true ? 'long polling (asked)' : 'long polling (?longpoll)';

    var feed = {
      state: 'connecting',
      transport: polling ? pollLabel : 'EventSource',
      symbols: opts.symbols ? normalize(opts.symbols) : null,
      fields: opts.fields ? distinct(opts.fields) : null,
      maxHz: opts.maxHz === undefined || opts.maxHz === null ? null : String(opts.maxHz),
      fallbacks: 0,
      lastId: function () { return lastId; },
      record: function (symbol) {
        var key = '$' + (symbol === null || symbol === undefined ? '' : String(symbol).toUpperCase());
        return records.hasOwnProperty(key) ? copy(records[key]) : null;
      },
      setSymbols: setSymbols,
      close: close
    };

    // The last id the transport saw (an event without an id keeps the one before): where
    // a poll resumes, as EventSource resumes from its own.
    var lastId = null;
    var records = {};            // '$' + symbol ('' for the default) → its merged record
    // Set when the list changes, until an answer for the new list comes: until then a
    // Last-Event-ID would leave out the new symbols (none of their updates may be above it).
    var needSnapshot = false;
    var gen = 0;                 // bumped at each (re)start; older callbacks do nothing
    var es = null, req = null, timer = null, held = null;
    var delay = 1000;
    var retryAfter = 0;          // ms an error answer's Retry-After asked for

    function report(state, transport) {
      if (transport === undefined) transport = feed.transport;
      if (feed.state === state && feed.transport === transport) return;
      feed.state = state; feed.transport = transport;
      onState(state, transport);
    }

    function inList(symbol) {
      if (!feed.symbols) return symbol === null;
      for (var i = 0; i < feed.symbols.length; i++) if (feed.symbols[i] === symbol) return true;
      return false;
    }

    // One event, merged into its symbol's record: 'new' (it changed something), 'dup' (a
    // repeat: every value it carries is the record's already), or false (not for us, or no
    // data). id: the transport's last id with this event; own: whether the event gave it.
    function take(id, own, data) {
      if (id !== null) lastId = id;
      if (data === null || data === undefined) return false;
      var symbol = null, values = {};
      if (data.charAt(0) === '{') {
        var o;
        try { o = JSON.parse(data); } catch (e) { return false; }
        if (!o || typeof o.symbol !== 'string') return false;
        symbol = o.symbol.toUpperCase();
        for (var k in o) if (o.hasOwnProperty(k) && k !== 'symbol') values[k] = o[k];
      } else values[headline] = trim(data);
      if (!inList(symbol)) return false;     // an event from before the list changed
      var key = '$' + (symbol === null ? '' : symbol);
      var record = records[key] || (records[key] = {});
      var changed = [], previous = {};
      for (var f in values) {
        if (!values.hasOwnProperty(f)) continue;
        if (record.hasOwnProperty(f) && record[f] === values[f]) continue;
        previous[f] = record[f];
        record[f] = values[f];
        changed.push(f);
      }
      if (!changed.length) return 'dup';
      var mine = own ? id : null;
      onRecord(symbol, copy(record), changed, mine, previous);
      if (onUpdate && values.hasOwnProperty(headline) && previous[headline] !== values[headline]) {
        onUpdate(symbol, String(record[headline]), mine);
      }
      return 'new';
    }

    function url() {
      var params = [];
      var plain = function (list) { return encodeURIComponent(list.join(',')).replace(/%2C/g, ','); };
      if (feed.symbols) params.push('symbols=' + plain(feed.symbols));
      if (feed.fields) params.push('fields=' + plain(feed.fields));
      if (feed.maxHz !== null) params.push('max_hz=' + encodeURIComponent(feed.maxHz));
      if (!params.length) return base;
      return base + (base.indexOf('?') < 0 ? '?' : '&') + params.join('&');
    }

    // Doubling, with jitter, so that pages cut off together (a restart) do not come back in
    // step. Never sooner than a Retry-After, spread over half as long again for the same
    // reason.
    function backoff() {
      var d = delay; delay = Math.min(delay * 2, MAX_DELAY);
      var wait = d * (0.5 + Math.random());
      if (retryAfter) { wait = Math.max(wait, retryAfter * (1 + 0.5 * Math.random())); retryAfter = 0; }
      return wait;
    }

    function later(fn, ms) {
      var g = gen;
      clearTimeout(timer);
      timer = setTimeout(function () { if (g === gen) fn(); }, ms);
    }

    // One long poll; cb('ok' | 'dup' | 'timeout' | 'error', sentId). XHR (not fetch) for old
    // browsers. Returns a handle whose cancel() ends it without a callback.
    function poll(cb) {
      var xhr = new XMLHttpRequest(), done = false, g = gen;
      var sent = needSnapshot ? null : lastId;
      var finish = function (r) {
        if (done) return;
        done = true; clearTimeout(guard);
        if (g === gen) cb(r, sent);
      };
      var guard = setTimeout(function () { finish('timeout'); xhr.abort(); }, POLL_GUARD_MS);
      xhr.open('GET', url(), true);
      xhr.setRequestHeader('X-Event-Source-Simulate', 'Long-Polling');
      if (sent !== null) xhr.setRequestHeader('Last-Event-ID', sent);
      xhr.onreadystatechange = function () {
        if (xhr.readyState !== 4 || done) return;
        if (xhr.status !== 200) {
          // Seconds only (tickerd's form); capped, so that a page never waits for ever.
          var ra = parseInt(xhr.getResponseHeader('Retry-After'), 10);
          if (ra > 0) retryAfter = Math.min(ra, RETRY_AFTER_CAP_S) * 1000;
          // The request itself is wrong (a bad or unknown symbol): the page should know.
          if (xhr.status >= 400 && xhr.status < 500 && xhr.status !== 408 && xhr.status !== 429) {
            var why = trim((xhr.responseText || '').split(/\r?\n/)[0]).slice(0, 300);
            if (g === gen) onError(xhr.status, why || 'HTTP ' + xhr.status);
          }
          return finish('error');
        }
        if (g === gen) needSnapshot = false;
        var events = parseEvents(xhr.responseText || '', sent), any = false, fresh = false;
        for (var i = 0; i < events.length && g === gen; i++) {
          var r = take(events[i].id, events[i].own, events[i].data);
          if (r) any = true;
          if (r === 'new') fresh = true;
        }
        // A 200 without an event would make us poll again in a hot loop: an error.
        finish(fresh ? 'ok' : any ? 'dup' : 'error');
      };
      xhr.send();
      return { cancel: function () { if (!done) { done = true; clearTimeout(guard); xhr.abort(); } } };
    }

    function longPollLoop() {
      var asked = new Date().getTime();
      req = poll(function (r, sent) {
        req = null;
        if (r === 'ok') { delay = 1000; report('long-polling'); longPollLoop(); }
        else if (r === 'timeout') longPollLoop();
        // A repeat after a held poll is normal, and so is one answering a poll that asked
        // for the snapshot (the next carries an id); one at once to a Last-Event-ID means it
        // did not arrive (a proxy dropped it): polling again at once would be a hot loop.
        else if (r === 'dup') {
          var quick = new Date().getTime() - asked < 1000;
          if (quick && (sent !== null || lastId === null)) later(longPollLoop, backoff());
          else longPollLoop();
        } else { report('reconnecting'); later(longPollLoop, backoff()); }
      });
    }

    function openStream() {
      report(feed.state, 'EventSource');
      var src = es = new global.EventSource(url());
      // Its last event's id: an event whose id is the same gave none of its own (ids are
      // never repeated), even the first after its own reconnection.
      var before = null;
      src.onopen = function () { if (es === src) { delay = 1000; report('live'); } };
      src.onmessage = function (e) {
        if (es !== src) return;
        needSnapshot = false;
        var id = e.lastEventId === '' ? null : e.lastEventId;
        var own = id !== null && id !== before;
        before = id;
        take(id, own, e.data);
        report('live');
      };
      src.onerror = function () {
        if (es !== src) return;
        if (src.readyState === global.EventSource.CLOSED) {
          // An error answer (e.g. 503 while the backend restarts): EventSource gives up.
          src.close(); es = null; feed.fallbacks++; recover();
        } else report('reconnecting');   // CONNECTING: its own retry, with Last-Event-ID
      };
    }

    // Reconnect ourselves with backoff: first one long poll that carries the last id, then
    // a new EventSource.
    function recover() {
      report('reconnecting', 'long poll (catching up)');
      later(function () {
        var settled = false, g = gen;
        req = poll(function (r) {
          if (settled) return;
          settled = true; clearTimeout(held); req = null;
          if (r === 'error') recover(); else openStream();
        });
        // A poll the server holds means the feed already has what is due: nothing to catch
        // up, so stream at once rather than wait for the next update.
        held = setTimeout(function () {
          if (settled || g !== gen) return;
          settled = true; req.cancel(); req = null; openStream();
        }, HELD_MS);
      }, backoff());
    }

    // Ends whatever is under way; callbacks of what was under way then do nothing.
    function stop() {
      gen++;
      clearTimeout(timer); clearTimeout(held);
      if (es) { es.close(); es = null; }
      if (req) { req.cancel(); req = null; }
    }

    function start() {
      stop();
      if (feed.symbols && !feed.symbols.length) return report('idle');
      if (polling) { report(feed.state, pollLabel); longPollLoop(); }
      else openStream();
    }

    function setSymbols(list) {
      var next = list ? normalize(list) : null;
      if (feed.state === 'closed') return;
      if (String(next) === String(feed.symbols) && !!next === !!feed.symbols) return;
      feed.symbols = next;
      for (var k in records) {
        if (records.hasOwnProperty(k) && !inList(k === '$' ? null : k.slice(1))) delete records[k];
      }
      // The snapshot of the new list starts the ids again: an id from the old stream is no
      // place to resume the new one from.
      needSnapshot = true;
      lastId = null;
      start();
    }

    function close() {
      stop();
      report('closed');
    }

    start();
    return feed;
  }

  global.tickerd = {
    connect: connect,
    schema: schema,
    newer: newer,
    parseEvents: parseEvents,
    decimal: { sub: sub, cmp: cmp, scale: scaleOf }
  };
})(typeof window !== 'undefined' ? window : this);
