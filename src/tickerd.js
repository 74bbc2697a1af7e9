/* tickerd.js: live prices from tickerd, for any page served beside it (same origin: tickerd
 * sends no CORS headers). ES5 on purpose: the long-polling fallback exists for old browsers
 * without EventSource.
 *
 *   <script src="tickerd.js"></script>
 *   <script>
 *     var feed = tickerd.connect({
 *       url: 'ticker',              // the stream, relative to the page (the default)
 *       symbols: ['AAPL', 'MSFT'],  // or 'AAPL,MSFT'; omit for the server's default symbol
 *                                   // (then onUpdate's symbol is null)
 *       longPoll: undefined,        // true: long polls only; false: EventSource whenever the
 *                                   // browser has it; undefined: long polls when the page's
 *                                   // URL has ?longpoll
 *       onUpdate: function (symbol, price, id) {},  // price "189.20" and id, both strings
 *       onState: function (state, transport) {},    // on any change of either, see below
 *       onError: function (status, message) {}      // a 4xx answer: bad or unknown symbols
 *     });
 *     feed.setSymbols(['AAPL', 'NVDA']);  // reconnect with this list; new ones get a snapshot
 *     feed.close();                       // for good
 *   </script>
 *
 * state: 'connecting', 'live' (EventSource), 'long-polling', 'reconnecting', 'idle' (an
 * empty list: nothing asked), 'closed'. transport: 'EventSource', 'long poll (catching up)',
 * 'long polling (no EventSource)', 'long polling (?longpoll)', 'long polling (asked)'.
 * The feed object also shows: feed.state, feed.transport, feed.symbols (the list, upper
 * case, distinct), feed.lastId() (the newest id taken in, or null), feed.fallbacks (times
 * EventSource gave up for good and the feed reconnected by itself).
 *
 * Each update is delivered once: an event whose id is not above the last one delivered for
 * its symbol is a repeat (a catch-up poll's answer, then the new stream's snapshot), and is
 * dropped. Ids are u64 near 1.8e15, kept as strings (a Number loses precision);
 * tickerd.newer(a, b) compares two.
 *
 * Reconnecting. EventSource retries by itself (sending Last-Event-ID) after a dropped
 * connection, but gives up for good after an error answer (503 while tickerd restarts
 * behind a front-end). The feed then reconnects itself with backoff (1 s doubling to 10 s,
 * with jitter; the Retry-After of an error answer to its own requests as a floor, capped at
 * 60 s, plus up to half again): first one long poll carrying the last id (a new EventSource
 * cannot send one), then a new EventSource. A catch-up poll that tickerd holds for more than
 * a second means nothing is missing: it streams again at once.
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

  // Upper case, distinct, in the order given; an array, or a string 'AAPL,MSFT'.
  function normalize(list) {
    if (typeof list === 'string') list = list.split(',');
    var out = [], seen = {};
    for (var i = 0; i < list.length; i++) {
      var s = trim(String(list[i])).toUpperCase();
      if (s && !seen['$' + s]) { seen['$' + s] = true; out.push(s); }
    }
    return out;
  }

  // The events of an SSE text (a long poll's answer), as {id, data}. As in EventSource, an
  // id holds for the events after it until another is given; a last event without its blank
  // line is taken too.
  function parseEvents(text) {
    var events = [], id = null, data = null, lines = text.split(/\r\n|\r|\n/);
    for (var i = 0; i < lines.length; i++) {
      var l = lines[i];
      if (l === '') {
        if (data !== null) events.push({ id: id, data: data });
        data = null;
        continue;
      }
      var c = l.indexOf(':');
      if (c === 0) continue;                 // comment
      var f = c < 0 ? l : l.slice(0, c), v = c < 0 ? '' : l.slice(c + 1);
      if (v.charAt(0) === ' ') v = v.slice(1);
      if (f === 'id') id = v;
      else if (f === 'data') data = data === null ? v : data + '\n' + v;
    }
    if (data !== null) events.push({ id: id, data: data });
    return events;
  }

  function connect(opts) {
    opts = opts || {};
    var base = opts.url || 'ticker';
    var onUpdate = opts.onUpdate || function () {};
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
      fallbacks: 0,
      lastId: function () { return lastId; },
      setSymbols: setSymbols,
      close: close
    };

    var lastId = null;           // the newest id taken in: a poll's Last-Event-ID
    var shown = {};              // '$' + symbol ('' for the default) → last id delivered
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

    // One event: 'new', 'dup' (a repeat), or false (not for us, or no data).
    function take(id, data) {
      if (data === null || data === undefined) return false;
      var symbol = null, price;
      if (data.charAt(0) === '{') {
        var o;
        try { o = JSON.parse(data); } catch (e) { return false; }
        if (!o || typeof o.symbol !== 'string' || o.price === undefined || o.price === null) return false;
        symbol = o.symbol.toUpperCase(); price = String(o.price);
      } else price = trim(data);
      if (!inList(symbol)) return false;     // an event from before the list changed
      if (id !== null && id !== '') {
        var key = '$' + (symbol === null ? '' : symbol);
        if (shown.hasOwnProperty(key) && !newer(id, shown[key])) return 'dup';
        shown[key] = id;
        if (newer(id, lastId)) lastId = id;
      } else id = null;
      onUpdate(symbol, price, id);
      return 'new';
    }

    function url() {
      if (!feed.symbols) return base;
      var list = encodeURIComponent(feed.symbols.join(',')).replace(/%2C/g, ',');
      return base + (base.indexOf('?') < 0 ? '?' : '&') + 'symbols=' + list;
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
        var events = parseEvents(xhr.responseText || ''), any = false, fresh = false;
        for (var i = 0; i < events.length && g === gen; i++) {
          var r = take(events[i].id, events[i].data);
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
      src.onopen = function () { if (es === src) { delay = 1000; report('live'); } };
      src.onmessage = function (e) {
        if (es !== src) return;
        needSnapshot = false;
        take(e.lastEventId === '' ? null : e.lastEventId, e.data);
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
      for (var k in shown) {
        if (shown.hasOwnProperty(k) && !inList(k === '$' ? null : k.slice(1))) delete shown[k];
      }
      needSnapshot = true;
      start();
    }

    function close() {
      stop();
      report('closed');
    }

    start();
    return feed;
  }

  global.tickerd = { connect: connect, newer: newer, parseEvents: parseEvents };
})(typeof window !== 'undefined' ? window : this);
