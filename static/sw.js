/* The service worker: keeps the pages a resident opened, and their assets, on the phone so
 * a form reloads without network. Pages: network first, the cached copy when offline.
 * Assets carry a content hash (?v=...): cache first. Posts are never touched: form.js
 * queues a submission that could not be sent, with its key, and sends it later. */
var CACHE = "qf-pages-1";
var PAGE = /^\/(?:[fe]\/[^\/]+)?$/;

self.addEventListener("install", function () { self.skipWaiting(); });

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (n) { return n !== CACHE; }).map(function (n) { return caches.delete(n); }));
  }).then(function () { return self.clients.claim(); }));
});

function keep(request, response) {
  if (!response || response.status !== 200) return response;
  var copy = response.clone();
  caches.open(CACHE).then(function (cache) {
    var url = new URL(request.url);
    if (url.search) {  // drop older versions of the same asset
      cache.keys().then(function (old) {
        old.forEach(function (r) {
          var u = new URL(r.url);
          if (u.pathname === url.pathname && u.search !== url.search) cache.delete(r);
        });
      });
    }
    return cache.put(request, copy);
  });
  return response;
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.indexOf("/static/") === 0) {
    event.respondWith(caches.match(request).then(function (hit) {
      return hit || fetch(request).then(function (response) { return keep(request, response); });
    }));
  } else if (request.mode === "navigate" && PAGE.test(url.pathname)) {
    event.respondWith(fetch(request).then(function (response) { return keep(request, response); }, function () {
      return caches.match(request, { ignoreSearch: true }).then(function (hit) { return hit || Response.error(); });
    }));
  }
});

// The first page a resident opens was loaded before this worker ran: the page sends a copy
// of itself (fetching it again would cost a phone the page twice) and its asset URLs.
// The copy carries the policy app.py sends with every page.
var POLICY = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
self.addEventListener("message", function (event) {
  var data = event.data || {};
  if (!data.assets) return;
  var page = new URL(data.url, self.location.origin);
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    var pending = data.assets.map(function (u) {
      var url = new URL(u, self.location.origin);
      if (url.origin !== self.location.origin || url.pathname.indexOf("/static/") !== 0) return null;
      return cache.match(url.href).then(function (hit) {  // from the browser's cache: no download
        return hit || fetch(url.href).then(function (r) { return keep(new Request(url.href), r); });
      });
    });
    if (data.html && page.origin === self.location.origin && PAGE.test(page.pathname)) {
      pending.push(cache.put(page.href, new Response(data.html, {
        headers: { "Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": POLICY }
      })));
    }
    return Promise.all(pending);
  }));
});
