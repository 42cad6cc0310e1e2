/* Small improvements for browsers that run scripts; every page works without them.
 * - questions with show_if appear and disappear as answers change (the condition tree
 *   comes from the server as JSON: no second parser here, only an evaluator);
 * - after htmx swaps a form with errors in, the first wrong answer gets the focus;
 * - a failed send says so, and keeps what was typed. */
(function () {
  "use strict";
  document.documentElement.className = "js";

  function answerOf(form, name, hidden) {
    if (hidden[name]) return null;
    var values = new FormData(form).getAll(name).map(function (v) { return String(v).trim(); })
      .filter(function (v) { return v !== ""; });
    return values;
  }

  function compare(op, a, b) {
    switch (op) {
      case "==": return a === b;
      case "!=": return a !== b;
      case "<": return a < b;
      case "<=": return a <= b;
      case ">": return a > b;
      case ">=": return a >= b;
    }
    return false;
  }

  function holds(cond, form, hidden) {
    switch (cond.type) {
      case "cmp": {
        var values = answerOf(form, cond.field, hidden);
        if (!values || values.length !== 1) return false;
        var value = values[0];
        if (typeof cond.value === "number") {
          value = Number(value.replace(/[０-９]/g, function (c) { return String.fromCharCode(c.charCodeAt(0) - 0xfee0); }));
          if (!isFinite(value)) return false;
        }
        return compare(cond.op, value, cond.value);
      }
      case "in": {
        var chosen = answerOf(form, cond.field, hidden);
        return !!chosen && chosen.indexOf(cond.value) >= 0;
      }
      case "not": return !holds(cond.item, form, hidden);
      case "and": return cond.items.every(function (c) { return holds(c, form, hidden); });
      case "or": return cond.items.some(function (c) { return holds(c, form, hidden); });
    }
    return true;
  }

  function applyConditions(form) {
    var hidden = {};
    form.querySelectorAll(".field").forEach(function (field) {
      var name = field.id.slice(2);
      var source = field.getAttribute("data-show-if");
      var show = !source || holds(JSON.parse(source), form, hidden);
      field.hidden = !show;
      if (!show) hidden[name] = true;
    });
  }

  function setUp(root) {
    root.querySelectorAll("form.survey").forEach(function (form) {
      applyConditions(form);
      if (!form.dataset.watched) {
        form.dataset.watched = "1";
        form.addEventListener("input", function () { applyConditions(form); });
        form.addEventListener("change", function () { applyConditions(form); });
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () { setUp(document); });
  document.addEventListener("htmx:load", function (event) {
    setUp(event.target.parentNode || document);
    var invalid = event.target.querySelector && event.target.querySelector("[aria-invalid=true]");
    if (invalid && event.target.matches && event.target.matches("form.survey")) {
      var input = invalid.matches("fieldset") ? invalid.querySelector("input") : invalid;
      if (input) input.focus();
    }
  });
  document.addEventListener("htmx:sendError", function (event) {
    var form = event.target.closest && event.target.closest("form.survey");
    if (!form || event.target !== form) return;
    var notice = form.querySelector(".send-error");
    if (!notice) {
      notice = document.createElement("p");
      notice.className = "notice send-error";
      notice.setAttribute("role", "alert");
      form.insertBefore(notice, form.querySelector(".submit"));
    }
    notice.textContent = "网络连接不上，这次没有提交成功。您填写的内容都还在，请稍后再点“提交”。";
  });
})();
