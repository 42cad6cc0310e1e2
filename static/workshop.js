// The workshop's editor: line numbers that follow the text, problem lines marked, a click on
// a problem goes to its line, and the previews refresh after a clean check (htmx does the check).
(function () {
  "use strict";
  function setUp() {
    var text = document.getElementById("toml"), gutter = document.getElementById("gutter");
    var form = document.getElementById("editor");
    if (!text || !gutter || !form) return;
    var bad = {};
    function draw() {
      var count = text.value.split("\n").length, html = [];
      for (var n = 1; n <= count; n++) html.push(bad[n] ? '<span class="bad">' + n + "</span>" : "<span>" + n + "</span>");
      gutter.innerHTML = html.join("");
      gutter.scrollTop = text.scrollTop;
    }
    function readProblems() {
      var box = document.querySelector("#problems .problems");
      bad = {};
      if (box) box.getAttribute("data-lines").split(" ").forEach(function (n) { if (n) bad[n] = true; });
      draw();
      return box && box.getAttribute("data-ok") === "yes";
    }
    // One form per preview frame: one form's second submission would cancel its first.
    var senders = {};
    function refreshPreviews() {
      ["preview-js-button", "preview-nojs-button"].forEach(function (id) {
        var button = document.getElementById(id);
        if (!button) return;
        var sender = senders[id];
        if (!sender) {
          sender = senders[id] = document.createElement("form");
          sender.method = "post";
          sender.action = button.formAction;
          sender.target = button.formTarget;
          sender.hidden = true;
          ["_csrf", "toml"].forEach(function (name) {
            var input = document.createElement("textarea");
            input.name = name;
            sender.appendChild(input);
          });
          document.body.appendChild(sender);
        }
        sender.elements._csrf.value = form.elements._csrf.value;
        sender.elements.toml.value = text.value;
        sender.submit();
      });
    }
    function goTo(line) {
      var lines = text.value.split("\n"), start = 0;
      for (var i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
      text.focus();
      text.setSelectionRange(start, start + (lines[line - 1] || "").length);
      text.scrollTop = Math.max(0, (line - 5) * 20);
      gutter.scrollTop = text.scrollTop;
    }
    text.addEventListener("input", draw);
    text.addEventListener("scroll", function () { gutter.scrollTop = text.scrollTop; });
    document.addEventListener("click", function (event) {
      var link = event.target.closest && event.target.closest("a.goto");
      if (!link) return;
      event.preventDefault();
      goTo(parseInt(link.getAttribute("data-line"), 10));
    });
    document.body.addEventListener("htmx:afterSwap", function (event) {
      if (event.detail.target && event.detail.target.id === "problems" && readProblems()) refreshPreviews();
    });
    readProblems();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUp);
  else setUp();
})();
