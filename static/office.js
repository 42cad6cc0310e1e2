/* Office report pages (loaded before form.js, which asks `window.qfOffice`):
 * - a report queued offline carries the CSRF token of the session it was typed in; sent from a
 *   page of the same report, it takes that page's token (a sign-in since then made a new one);
 * - a queued report refused for want of a sign-in stays queued, and the page says so;
 * - a report sent from a fresh page of it replaces that page's form with the answer;
 * - a form sent after the sign-in ended stays on the page (its draft is kept), not a 401 page. */
(function () {
  "use strict";
  var CSRF = "_csrf";
  function formAt(path) {
    var found = null;
    document.querySelectorAll("form.survey").forEach(function (form) { if (form.getAttribute("action") === path) found = form; });
    return found;
  }
  function notice(text) {
    var line = document.createElement("p");
    line.className = "notice sign-in-first";
    line.setAttribute("role", "alert");
    line.innerHTML = text + " <a href=\"/admin/login\">重新登录</a>";
    return line;
  }
  window.qfOffice = {
    prepare: function (item, encode, decode) {
      var form = formAt(item.path), input = form && form.querySelector("[name=" + CSRF + "]");
      if (!input) return item.body;
      if (item.answers) { item.body.set(CSRF, input.value); return item.body; }  // photo.js's FormData
      return encode(decode(item.body).map(function (p) { return p[0] === CSRF ? [CSRF, input.value] : p; }));
    },
    refused: function (form) {
      var saved = form && form.previousElementSibling;
      if (!saved || saved.className !== "saved" || saved.querySelector(".sign-in-first")) return;
      saved.appendChild(notice("登录已过期，这次没有提交。内容还保存在这部手机上：请重新登录后再提交（登录后再打开本页，会自动提交）。"));
    },
    formFor: function (item) { return formAt(item.path); }
  };
  document.addEventListener("htmx:beforeSwap", function (event) {
    var form = event.detail.elt, status = event.detail.xhr.status;
    if (!form.matches || !form.matches("form.survey") || (status !== 401 && status !== 403)) return;
    event.detail.shouldSwap = false;  // the draft form.js keeps as answers are typed stays too
    if (!form.querySelector(".sign-in-first")) {
      form.insertBefore(notice("登录已过期，这次没有保存。填写的文字已保存在这部手机上：请重新登录后再打开本页提交（照片需要重新选择）。"),
        form.querySelector(".submit"));
    }
  });
})();
