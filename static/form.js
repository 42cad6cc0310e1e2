/* Small improvements for browsers that run scripts; every page works without them.
 * - questions with show_if appear and disappear as answers change (the condition tree
 *   comes from the server as JSON: no second parser here, only an evaluator);
 * - after htmx swaps a form with errors in, its error summary gets the focus;
 * - answers are kept on the phone as they are typed and come back after a reload;
 * - a send that fails for want of network is queued with its key and sent when the
 *   network returns; the service worker (/sw.js) keeps the pages usable offline. */
(function () {
  "use strict";
  // a copy of this page as the server sent it, for the service worker (see the end)
  var firstPage = "serviceWorker" in navigator && !navigator.serviceWorker.controller ?
    "<!doctype html>\n" + document.documentElement.outerHTML : null;
  document.documentElement.className = "js";

  function answerOf(form, name, hidden) {
    if (hidden[name]) return null;
    var values = new FormData(form).getAll(name).map(function (v) { return typeof v === "string" ? v.trim() : v.size ? v.name : ""; })
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
    var hidden = {}, personal = false;
    form.querySelectorAll(".field").forEach(function (field) {
      var name = field.id.slice(2);
      var source = field.getAttribute("data-show-if");
      var show = !source || holds(JSON.parse(source), form, hidden);
      field.hidden = !show;
      if (!show) hidden[name] = true;
      else if (field.hasAttribute("data-personal") && (answerOf(form, name, hidden) || []).length) personal = true;
    });
    // the product's consent box matters only once a personal answer is given
    var consent = form.querySelector(".consent-box");
    if (consent) consent.hidden = !personal && !consent.querySelector(".error:not(:empty)");
  }

  // 市县 → 乡镇: the one long list (grouped by 市县) becomes two short ones; the original,
  // hidden, is still what is sent, so the page works the same with or without this.
  function splitRegion(select) {
    if (select.dataset.split) return;
    select.dataset.split = "1";
    var groups = Array.prototype.slice.call(select.querySelectorAll("optgroup"));
    var county = document.createElement("select"), town = document.createElement("select");
    county.className = town.className = "region-part";
    county.id = select.id;
    select.id = select.id + "-all";
    county.setAttribute("aria-describedby", select.getAttribute("aria-describedby") || "");
    town.setAttribute("aria-label", "乡镇");
    county.add(new Option("请选择市县", ""));
    groups.forEach(function (g) { county.add(new Option(g.label, g.label)); });
    function fillTowns() {
      town.length = 0;
      town.add(new Option(county.value ? "请选择乡镇" : "请先选择市县", ""));
      groups.forEach(function (g) {
        if (g.label !== county.value) return;
        Array.prototype.forEach.call(g.children, function (o) { town.add(new Option(o.text, o.text)); });
      });
      town.disabled = !county.value;
    }
    county.addEventListener("change", function (event) {
      event.stopPropagation();
      fillTowns();
      select.value = "";
    });
    town.addEventListener("change", function (event) {
      event.stopPropagation();
      select.value = town.value;
      select.dispatchEvent(new Event("change", { bubbles: true }));
    });
    select.hidden = true;
    select.parentNode.insertBefore(county, select);
    select.parentNode.insertBefore(town, select);
    var chosen = select.selectedIndex > 0 ? select.options[select.selectedIndex] : null;
    county.value = chosen ? chosen.parentNode.label : "";
    fillTowns();
    town.value = chosen ? chosen.text : "";
  }

  function setUp(root) {
    root.querySelectorAll("select[data-region='2']").forEach(splitRegion);
    root.querySelectorAll("form.survey").forEach(function (form) {
      applyConditions(form);
      if (!form.dataset.watched) {
        form.dataset.watched = "1";
        form.addEventListener("input", function () { applyConditions(form); keepDraft(form); });
        form.addEventListener("change", function () { applyConditions(form); keepDraft(form); });
      }
    });
  }

  // Drafts: what is typed is kept on this phone (per form) until it is sent, and comes
  // back after a reload. A send that fails for want of network is queued with its
  // submission key and sent again later: the server stores one response per key.
  var QUEUE = "qf:queue", USED = "qf:used", KEY = "_key", WEEK = 7 * 24 * 3600 * 1000;

  function load(name, fallback) {
    try { var value = JSON.parse(localStorage.getItem(name)); return value == null ? fallback : value; } catch (e) { return fallback; }
  }
  function save(name, value) {
    try {
      if (value == null) localStorage.removeItem(name); else localStorage.setItem(name, JSON.stringify(value));
      return true;
    } catch (e) { return false; }
  }
  function draftName(path) { return "qf:draft:" + path; }
  function keyOf(form) { var input = form.querySelector("[name=" + KEY + "]"); return input ? input.value : ""; }
  function pairs(form) {
    var out = [];
    new FormData(form).forEach(function (value, name) { if (typeof value === "string") out.push([name, value]); });  // not photos
    return out;
  }
  function encode(list) {
    return list.map(function (p) { return encodeURIComponent(p[0]) + "=" + encodeURIComponent(p[1]); }).join("&");
  }
  function decode(body) {
    return body.split("&").map(function (p) { return p.split("=").map(function (s) { return decodeURIComponent(s); }); });
  }
  function keepDraft(form) {
    save(draftName(form.getAttribute("action")), { at: Date.now(), answers: pairs(form).filter(function (p) { return p[0] !== KEY; }) });
  }
  function restoreDraft(form) {
    var draft = load(draftName(form.getAttribute("action")), null), byName = {};
    if (!draft || !draft.answers || Date.now() - draft.at > WEEK) return;
    draft.answers.forEach(function (p) { (byName[p[0]] = byName[p[0]] || []).push(p[1]); });
    Array.prototype.forEach.call(form.elements, function (input) {
      var values = byName[input.name];
      if (!input.name || input.name === KEY || input.name === "_csrf" || input.type === "submit") return;  // a fresh token
      if (input.type === "checkbox" || input.type === "radio") input.checked = !!values && values.indexOf(input.value) >= 0;
      else if (values) input.value = values[0];
    });
    if (draft.fix) say(form, "您没联网时提交的回答有需要修改的地方，请检查后再点“提交”。");
  }
  function markUsed(key) {
    if (key) save(USED, [key].concat(load(USED, []).filter(function (k) { return k !== key; })).slice(0, 50));
  }
  function queued(key) { return load(QUEUE, []).filter(function (item) { return item.key === key; }).length > 0; }
  function unqueue(key) { save(QUEUE, load(QUEUE, []).filter(function (item) { return item.key !== key; })); }
  function freshKey() {
    var bytes = new Uint8Array(18);
    crypto.getRandomValues(bytes);
    return btoa(String.fromCharCode.apply(null, bytes)).replace(/\+/g, "-").replace(/\//g, "_");
  }
  function say(form, text) {
    var notice = form.querySelector(".send-error");
    if (!notice) {
      notice = document.createElement("p");
      notice.className = "notice send-error";
      notice.setAttribute("role", "alert");
      form.insertBefore(notice, form.querySelector(".submit"));
    }
    notice.textContent = text;
  }
  function formWithKey(key) {
    var found = null;
    document.querySelectorAll("form.survey").forEach(function (form) { if (key && keyOf(form) === key) found = form; });
    return found;
  }
  function replaceForm(form, html) {
    var saved = form.previousElementSibling;
    if (saved && saved.className === "saved") saved.parentNode.removeChild(saved);
    form.hidden = false;
    if (window.htmx) window.htmx.swap(form, html, { swapStyle: "outerHTML" });
    else form.outerHTML = html;
    window.scrollTo(0, 0);
  }

  function enqueue(form) {
    var key = keyOf(form), item = { path: form.getAttribute("action"), key: key, body: encode(pairs(form)), at: Date.now() };
    var queue = load(QUEUE, []).filter(function (old) { return old.key !== key; });
    if (!save(QUEUE, queue.concat([item]))) return false;
    showSaved(form);
    return true;
  }
  function showSaved(form) {
    save(draftName(form.getAttribute("action")), null);
    var saved = document.createElement("section");
    saved.className = "saved";
    saved.setAttribute("role", "status");
    saved.innerHTML = "<h1 class=\"thanks-title\">已保存，联网后自动提交</h1><p>现在连不上网络。您的回答已经保存在这部手机上，" +
      "有网络时会自动提交，不用再填一次。</p><p>如果先关了本页，联网后再" + (office ? "打开本页" : "扫码打开一次") + "就会提交。</p>";
    form.parentNode.insertBefore(saved, form);
    form.hidden = true;
    window.scrollTo(0, 0);
  }

  // this queue, then photo.js's (IndexedDB) on a photo form; `held`: office sends refused for want
  // of a sign-in, kept and skipped until the next page. office.js (report pages) sets `office`.
  var queues = [{ next: function (use, held) { use(load(QUEUE, []).filter(function (i) { return !held[i.key]; })[0]); }, drop: unqueue }];
  var flushing = false, retry = null, held = {}, office = window.qfOffice;
  function later() {
    if (!retry) retry = setTimeout(function () { retry = null; flush(); }, 30000);
  }
  function flush() {
    if (flushing) return;
    flushing = true;
    (function from(i) {
      if (i >= queues.length) flushing = false;
      else queues[i].next(function (item) { if (item) send(queues[i], item); else from(i + 1); }, held);
    })(0);
  }
  function send(queue, item) {
    var xhr = new XMLHttpRequest();
    if (office) item.body = office.prepare(item, encode, decode);
    xhr.open("POST", item.path);
    // photo.js's body is FormData, which sets its own multipart type
    if (!item.answers) xhr.setRequestHeader("Content-Type", "application/x-www-form-urlencoded");
    xhr.setRequestHeader("HX-Request", "true");  // the answer is the fragment that replaces the form
    xhr.timeout = item.answers ? 120000 : 30000;  // pictures are slow on 3G
    xhr.onload = function () {
      flushing = false;
      if (xhr.status === 429 || xhr.status >= 500) return later();
      if ((xhr.status === 401 || xhr.status === 403) && /^\/admin\//.test(item.path)) {
        held[item.key] = true;  // not lost: sent by a later page with a valid sign-in
        if (office) office.refused(formWithKey(item.key));
        return flush();
      }
      queue.drop(item.key);
      var form = formWithKey(item.key) || (office && xhr.status === 200 ? office.formFor(item) : null);
      if (xhr.status === 200) {
        markUsed(item.key);
      } else if (xhr.status === 422 && !form) {
        save(draftName(item.path), { at: Date.now(), answers: item.answers || decode(item.body), fix: true });
      }
      if (form) replaceForm(form, xhr.responseText);
      flush();
    };
    xhr.onerror = xhr.ontimeout = function () { flushing = false; later(); };
    xhr.send(item.body);
  }
  window.qfOffline = { queues: queues, saved: showSaved, later: later };

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.survey").forEach(function (form) {
      var key = form.querySelector("[name=" + KEY + "]");
      // a page kept by the service worker may carry a key already sent: take a new one
      if (key && (load(USED, []).indexOf(key.value) >= 0 || queued(key.value))) key.value = freshKey();
      restoreDraft(form);
    });
    if (document.querySelector("section.thanks") && /\/thanks$/.test(location.pathname)) {
      save(draftName(location.pathname.replace(/\/thanks$/, "")), null);
    }
    setUp(document);
    flush();
  });
  window.addEventListener("online", flush);
  document.addEventListener("submit", function (event) {
    if (event.target.matches && event.target.matches("form.survey")) markUsed(keyOf(event.target));
  });
  document.addEventListener("htmx:load", function (event) {
    setUp(event.target.parentNode || document);
    // a form swapped in with errors: go to its summary, which links each wrong question
    var summary = event.target.querySelector && event.target.querySelector(".error-summary");
    if (summary && event.target.matches && event.target.matches("form.survey")) {
      summary.focus();
      summary.scrollIntoView({ block: "start" });
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (!form.matches || !form.matches("form.survey") || event.detail.xhr.status !== 200) return;
    unqueue(keyOf(form));  // sent: an older queued copy need not go
    save(draftName(form.getAttribute("action")), null);
  });
  document.addEventListener("htmx:sendError", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form.survey")) return;
    if (!enqueue(form)) say(form, "网络连接不上，这次没有提交成功。您填写的内容都还在，请稍后再点“提交”。");
    later();
  });

  if ("serviceWorker" in navigator) {
    window.addEventListener("load", function () {
      navigator.serviceWorker.register("/sw.js").then(function () { return navigator.serviceWorker.ready; }).then(function (reg) {
        if (!firstPage || !reg.active) return;
        var assets = [];
        document.querySelectorAll("link[rel=stylesheet], script[src]").forEach(function (el) {
          assets.push(el.getAttribute("href") || el.getAttribute("src"));
        });
        reg.active.postMessage({ url: location.href, html: firstPage, assets: assets });
      })["catch"](function () {});
    });
  }
})();
