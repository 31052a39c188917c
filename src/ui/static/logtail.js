// Wharf console: follows a running task's log on its page. The page already
// shows the last lines (it works without this); this adds the new ones as
// the server sends them (server-sent events), until the task stops or the
// server ends the stream.
(function () {
  "use strict";
  var MAX_LINES = 2000;

  function start() {
    var pre = document.querySelector("pre[data-log-stream]");
    if (!pre || !window.EventSource) { return; }
    var status = document.getElementById("log-status");
    var lines = pre.textContent.split("\n");
    if (lines.length && lines[lines.length - 1] === "") { lines.pop(); }
    var source = new EventSource(pre.getAttribute("data-log-stream"));

    function say(text) { if (status) { status.textContent = text; } }

    function show() {
      var follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      if (lines.length > MAX_LINES) { lines = lines.slice(lines.length - MAX_LINES); }
      pre.textContent = lines.length ? lines.join("\n") + "\n" : "";
      if (follow) { pre.scrollTop = pre.scrollHeight; }
    }

    function read(event) {
      try { return JSON.parse(event.data); } catch (e) { return {}; }
    }

    source.addEventListener("reset", function (event) {
      lines = read(event).lines || [];
      show();
      say("Following new lines…");
    });
    source.addEventListener("lines", function (event) {
      var data = read(event);
      if (data.skipped) { lines.push("[… " + data.skipped + " lines skipped …]"); }
      lines = lines.concat(data.lines || []);
      show();
    });
    source.addEventListener("end", function (event) {
      var reason = read(event).reason;
      source.close();
      if (reason === "stopped") { say("The task has stopped."); }
      else if (reason === "expired") { say("Stopped following after 10 minutes; reload to follow again."); }
      else { say("The task is no longer available."); }
    });
    source.onerror = function () {
      source.close();
      say("Not following: the connection ended. Reload to follow again.");
    };
  }

  if (document.readyState !== "loading") { start(); } else { document.addEventListener("DOMContentLoaded", start); }
})();
