/*! eye.js: sends page views, clicks and form submits to The Eye. No dependencies.
 *  <script src="https://eye.example.com/sdk/eye.js"></script>
 *  <script>eye.init({endpoint: "https://eye.example.com", token: "eye_i_…"})</script>
 */
(function (w, d) {
  "use strict";
  var KEY = "eye_session";
  var cfg = null;
  var queue = [];
  var timer = null;
  var failures = 0;
  var lastPath = null;

  function hex(b) {
    var h = "";
    for (var i = 0; i < 16; i++) h += (b[i] + 256).toString(16).slice(1) + (i === 3 || i === 5 || i === 7 || i === 9 ? "-" : "");
    return h;
  }

  function uuid() {
    var c = w.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    var b = c.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    return hex(b);
  }

  // Event ids are UUIDv7 (48 bits of Unix milliseconds first): the server derives a
  // time-ordered event id from them, which keeps its store fast as it grows.
  function uuid7() {
    var b = w.crypto.getRandomValues(new Uint8Array(16)), t = Date.now();
    for (var i = 5; i >= 0; i--) { b[i] = t % 256; t = Math.floor(t / 256); }
    b[6] = (b[6] & 15) | 112;
    b[8] = (b[8] & 63) | 128;
    return hex(b);
  }

  // One id per tab, kept in sessionStorage, renewed after `idleMinutes` without events.
  function session() {
    var now = Date.now(), s = null;
    try { s = JSON.parse(sessionStorage.getItem(KEY)); } catch (e) { /* storage off */ }
    if (!s || now - s.t > cfg.idleMinutes * 60000) s = { id: uuid() };
    s.t = now;
    try { sessionStorage.setItem(KEY, JSON.stringify(s)); } catch (e) { /* storage off */ }
    return s.id;
  }

  function track(category, name, data) {
    if (!cfg) return;
    data = data || {};
    if (data.host === undefined) data.host = location.host;
    if (data.path === undefined) data.path = location.pathname;
    queue.push({
      id: uuid7(), session_id: session(), category: category, name: name,
      data: data, timestamp: new Date().toISOString()
    });
    if (queue.length >= cfg.batchSize) flush();
    else if (!timer) timer = setTimeout(flush, cfg.flushInterval);
  }

  // Sends what is queued. `beacon`: the page is going away, so use sendBeacon (it
  // cannot set headers: the ingest token goes in the URL, the body as text/plain).
  function flush(beacon) {
    clearTimeout(timer);
    timer = null;
    while (queue.length) {
      var batch = queue.splice(0, cfg.batchSize), body = JSON.stringify(batch);
      if (beacon === true && navigator.sendBeacon &&
          navigator.sendBeacon(cfg.endpoint + "/events?token=" + encodeURIComponent(cfg.token),
                               new Blob([body], { type: "text/plain" }))) continue;
      send(batch, body);
    }
  }

  function send(batch, body) {
    fetch(cfg.endpoint + "/events", {
      method: "POST", keepalive: body.length < 60000, mode: "cors",
      headers: { "Authorization": "Bearer " + cfg.token, "Content-Type": "application/json" },
      body: body
    }).then(function (r) {
      if (r.status === 408 || r.status === 429 || r.status >= 500) retry(batch, r.headers.get("Retry-After"));
      else failures = 0;
    }, function () { retry(batch); });
  }

  // The same events again (same ids: the server stores them once), later.
  function retry(batch, after) {
    failures++;
    if (failures > cfg.maxRetries) return;
    queue = batch.concat(queue);
    var wait = Math.min(30000, 500 * Math.pow(2, failures)) * Math.random();
    if (after) wait = Math.max(wait, 1000 * after);
    clearTimeout(timer);
    timer = setTimeout(flush, wait);
  }

  function pageview() {
    if (location.pathname + location.search === lastPath) return;
    lastPath = location.pathname + location.search;
    track("page interaction", "pageview");
  }

  function label(el) {
    return el.getAttribute("data-eye") || (el.textContent || "").trim().slice(0, 200);
  }

  function onClick(e) {
    var el = e.target.closest && e.target.closest("[data-eye]");
    if (el) track("page interaction", "cta click", { element: label(el) });
  }

  // Field names always; values only of fields marked data-eye-send.
  function onSubmit(e) {
    var f = e.target;
    if (!f.matches || !f.matches("[data-eye-form]")) return;
    var fields = [], values = {};
    for (var i = 0; i < f.elements.length; i++) {
      var el = f.elements[i];
      if (!el.name || fields.indexOf(el.name) >= 0) continue;
      fields.push(el.name);
      if (el.hasAttribute("data-eye-send")) values[el.name] = el.value;
    }
    track("form interaction", "submit", {
      form: { id: f.getAttribute("data-eye-form") || f.id || f.name || "", fields: fields, values: values }
    });
    flush(true);
  }

  function init(options) {
    if (cfg) return;
    cfg = {
      endpoint: String(options.endpoint || "").replace(/\/+$/, ""),
      token: options.token,
      batchSize: options.batchSize || 20,
      flushInterval: options.flushInterval || 1000,
      idleMinutes: options.idleMinutes || 30,
      maxRetries: options.maxRetries || 8
    };
    var h = w.history, push = h.pushState, replace = h.replaceState;
    h.pushState = function () { var r = push.apply(this, arguments); pageview(); return r; };
    h.replaceState = function () { var r = replace.apply(this, arguments); pageview(); return r; };
    w.addEventListener("popstate", pageview);
    d.addEventListener("click", onClick, true);
    d.addEventListener("submit", onSubmit, true);
    d.addEventListener("visibilitychange", function () { if (d.visibilityState === "hidden") flush(true); });
    w.addEventListener("pagehide", function () { flush(true); });
    if (options.pageviews !== false) pageview();
  }

  w.eye = { init: init, track: track, flush: flush, session: function () { return cfg && session(); } };
})(window, document);
