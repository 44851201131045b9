/* ppacer-async web pages: times in the browser's time zone, relative with the exact time
   on hover, and the live-update indicator. */
(function () {
  "use strict";

  var exact = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
  });
  var clock = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"
  });
  var relative = typeof Intl.RelativeTimeFormat === "function"
    ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "long" })
    : null;
  var units = [
    ["year", 365 * 86400], ["month", 30 * 86400], ["week", 7 * 86400],
    ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]
  ];

  function describe(seconds) {
    var abs = Math.abs(seconds);
    if (abs < 5) { return "just now"; }
    for (var i = 0; i < units.length; i++) {
      var unit = units[i];
      if (abs >= unit[1] || unit[0] === "second") {
        var n = Math.round(seconds / unit[1]);
        if (relative) { return relative.format(n, unit[0]); }
        return Math.abs(n) + " " + unit[0] + (Math.abs(n) === 1 ? "" : "s") + (n < 0 ? " ago" : " from now");
      }
    }
    return "";
  }

  function formatTimes(root) {
    var now = Date.now();
    var nodes = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i];
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) { continue; }
      var full = exact.format(when);
      el.title = full;
      var format = el.getAttribute("data-format");
      if (format === "exact") {
        el.textContent = full;
      } else if (format === "time") {
        el.textContent = clock.format(when) + "." + String(when.getMilliseconds()).padStart(3, "0");
      } else {
        el.textContent = describe((when.getTime() - now) / 1000);
      }
    }
  }

  /* Elements with ``data-when`` get the time (exact, local) added to their title. */
  function titleTimes(root) {
    var nodes = (root || document).querySelectorAll("[data-when]");
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i];
      var when = new Date(el.getAttribute("data-when"));
      if (isNaN(when.getTime())) { continue; }
      if (!el.hasAttribute("data-title")) { el.setAttribute("data-title", el.title); }
      el.title = el.getAttribute("data-title") + " · " + exact.format(when);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    formatTimes(document);
    titleTimes(document);
  });
  document.addEventListener("htmx:afterSettle", function (evt) {
    formatTimes(evt.target);
    titleTimes(evt.target);
  });
  window.setInterval(function () { formatTimes(document); }, 20000);

  /* The live indicator shows whether the event stream is connected; it is redrawn
     with the part of the page it sits in, so the state is kept here. */
  var liveState = null;
  function showLive() {
    if (liveState === null) { return; }
    var marks = document.querySelectorAll("[data-live]");
    for (var i = 0; i < marks.length; i++) {
      marks[i].setAttribute("data-state", liveState);
      marks[i].textContent = liveState === "open" ? "Live" : "Reconnecting…";
    }
  }
  /* Whatever changed before the stream (re)connected was not sent on it: refresh the
     live parts once it is open. */
  document.addEventListener("htmx:sseOpen", function () {
    liveState = "open";
    showLive();
    var parts = document.querySelectorAll("[data-live-part]");
    for (var i = 0; i < parts.length; i++) { htmx.trigger(parts[i], "ppacer:refresh"); }
  });
  document.addEventListener("htmx:sseError", function () { liveState = "closed"; showLive(); });

  /* A refreshed part keeps the sections the reader opened (or closed). */
  var kept = null;
  document.addEventListener("htmx:beforeSwap", function (evt) {
    kept = {};
    var open = evt.detail.target.querySelectorAll("details[data-key]");
    for (var i = 0; i < open.length; i++) { kept[open[i].getAttribute("data-key")] = open[i].open; }
  });
  document.addEventListener("htmx:afterSwap", function (evt) {
    if (kept !== null) {
      var found = evt.detail.target.querySelectorAll("details[data-key]");
      for (var i = 0; i < found.length; i++) {
        var key = found[i].getAttribute("data-key");
        if (Object.prototype.hasOwnProperty.call(kept, key)) { found[i].open = kept[key]; }
      }
      kept = null;
    }
    loadWithin(evt.detail.target);
    showLive();
    announce(evt.detail.target);
  });

  /* Parts marked ``data-src`` (a task's attempts and logs) are read when the section
     holding them is opened, not with the page. */
  function loadWithin(root) {
    var parts = root.querySelectorAll("[data-src]");
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i];
      var holder = part.closest("details");
      if (holder !== null && !holder.open) { continue; }
      var src = part.getAttribute("data-src");
      part.removeAttribute("data-src");
      htmx.ajax("GET", src, { target: part, swap: "outerHTML" });
    }
  }
  document.addEventListener("toggle", function (evt) {
    if (evt.target.tagName === "DETAILS" && evt.target.open) { loadWithin(evt.target); }
  }, true);
  document.addEventListener("DOMContentLoaded", function () { loadWithin(document); });

  /* The keys of the sections open now: a refresh draws them open, with their content. */
  function openKeys() {
    var keys = [];
    var open = document.querySelectorAll("details[open][data-key]");
    for (var i = 0; i < open.length; i++) { keys.push(open[i].getAttribute("data-key")); }
    return keys;
  }

  /* Screen readers hear when a refreshed run changes status. */
  var lastStatus = null;
  function announce(root) {
    var badge = root.querySelector(".page-head .status");
    var region = document.querySelector("[data-announce]");
    if (badge === null || region === null) { return; }
    var text = badge.textContent.trim();
    if (lastStatus !== null && text !== lastStatus) {
      var title = root.querySelector(".page-head h1");
      region.textContent = (title ? title.textContent.trim() + " is " : "") + text;
    }
    lastStatus = text;
  }
  document.addEventListener("DOMContentLoaded", function () { announce(document); });

  /* Whether a server-sent event (its data a JSON object) is about run ``runId``. */
  function forRun(message, runId) {
    try {
      return JSON.parse(message.data).run_id === runId;
    } catch (e) {
      return false;
    }
  }

  window.ppacer = { formatTimes: formatTimes, forRun: forRun, openKeys: openKeys };
})();
