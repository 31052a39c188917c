// Wharf console: progressive enhancement only; every page works without it.
(function () {
  "use strict";
  var root = document.documentElement;

  // Theme: auto (the system's), dark or light, remembered in this browser.
  var saved = null;
  try { saved = localStorage.getItem("wharf-theme"); } catch (e) { saved = null; }
  if (saved === "dark" || saved === "light") { root.dataset.theme = saved; }

  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }

  function copy(text, button) {
    function done(ok) {
      if (!button) { return; }
      var label = button.textContent;
      button.textContent = ok ? "Copied" : "Copy failed";
      setTimeout(function () { button.textContent = label; }, 1200);
    }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, function () { done(false); });
    } else {
      done(false);
    }
  }

  ready(function () {
    var toggle = document.getElementById("theme-toggle");
    if (toggle) {
      toggle.hidden = false;
      var label = function () { toggle.textContent = "Theme: " + (root.dataset.theme || "auto"); };
      label();
      toggle.addEventListener("click", function () {
        var next = { auto: "dark", dark: "light", light: "auto" }[root.dataset.theme || "auto"];
        if (next === "auto") { delete root.dataset.theme; } else { root.dataset.theme = next; }
        try { if (next === "auto") { localStorage.removeItem("wharf-theme"); } else { localStorage.setItem("wharf-theme", next); } } catch (e) { /* private mode */ }
        label();
      });
    }

    document.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
      b.hidden = false;
      b.addEventListener("click", function () { copy(b.dataset.copy, b); });
    });

    // Live filtering of the rows shown by name (their first cell), as the
    // form filters on the server.
    document.querySelectorAll("input[data-filter]").forEach(function (input) {
      var table = document.getElementById(input.dataset.filter);
      if (!table) { return; }
      input.addEventListener("input", function () {
        var needle = input.value.toLowerCase();
        table.querySelectorAll("tbody tr").forEach(function (row) {
          var name = (row.cells[0] || row).textContent.toLowerCase();
          row.hidden = needle !== "" && name.indexOf(needle) < 0;
        });
      });
    });

    var help = document.getElementById("help");
    var selected = -1;
    function rows() {
      return Array.prototype.filter.call(document.querySelectorAll("table.rows tbody tr"), function (r) { return !r.hidden; });
    }
    function select(i) {
      var all = rows();
      if (all.length === 0) { return; }
      selected = Math.max(0, Math.min(all.length - 1, i));
      all.forEach(function (r, n) { r.classList.toggle("selected", n === selected); });
      var link = all[selected].querySelector("a");
      if (link) { link.focus(); }
    }
    document.addEventListener("keydown", function (e) {
      if (e.ctrlKey || e.metaKey || e.altKey) { return; }
      var t = e.target;
      if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) {
        if (e.key === "Escape") { t.blur(); }
        return;
      }
      if (e.key === "/") {
        var search = document.querySelector("input[type=search]");
        if (search) { e.preventDefault(); search.focus(); }
      } else if (e.key === "j") {
        select(selected + 1);
      } else if (e.key === "k") {
        select(selected - 1);
      } else if (e.key === "c") {
        var scope = rows()[selected] || document;
        var b = scope.querySelector("button.copy[data-copy]");
        if (b) { copy(b.dataset.copy, b); }
      } else if (e.key === "?") {
        if (help) { if (help.open) { help.close(); } else { help.showModal(); } }
      }
    });
    var close = document.getElementById("help-close");
    if (close && help) { close.addEventListener("click", function () { help.close(); }); }
  });
})();
