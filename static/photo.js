/* Photo questions, with script (loaded only on forms that have them):
 * - each picture is made smaller on the phone before it is sent: longest side 1600 px, JPEG,
 *   so a camera's 3-8 MB becomes a few hundred KB and a 3G upload takes seconds;
 * - one picker shows at a time, each chosen picture with a preview and a 删除 button;
 * - a send waits until the pictures are ready, and after a page with errors the pictures
 *   come back (the server keeps none from a refused send);
 * - a send that fails for want of network is kept in IndexedDB, pictures and all.
 * Without it the pickers send the originals, up to the limit the page states. */
(function () {
  "use strict";
  var SIDE = 1600, QUALITY = 0.8, PREVIEW = 144;
  var pending = 0, waiting = [], kept = {};

  function slot(input) {
    var form = input.form, all = form.querySelectorAll("input[type=file][name='" + input.name + "']");
    return form.getAttribute("action") + "|" + input.name + "|" + Array.prototype.indexOf.call(all, input);
  }

  function decode(file, callback) {
    // createImageBitmap turns the picture upright by its EXIF orientation and needs no URL
    // (the page's Content-Security-Policy allows images from data: but not blob:)
    if (window.createImageBitmap) {
      try {
        createImageBitmap(file, { imageOrientation: "from-image" }).then(callback, function () { callback(null); });
        return;
      } catch (e) { /* no options on this browser: read it as an image below */ }
    }
    var reader = new FileReader();
    reader.onload = function () {
      var image = new Image();
      image.onload = function () { callback(image); };
      image.onerror = function () { callback(null); };
      image.src = reader.result;
    };
    reader.onerror = function () { callback(null); };
    reader.readAsDataURL(file);
  }

  function draw(picture, side) {
    var width = picture.width, height = picture.height, scale = Math.min(1, side / Math.max(width, height));
    var canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(width * scale));
    canvas.height = Math.max(1, Math.round(height * scale));
    canvas.getContext("2d").drawImage(picture, 0, 0, canvas.width, canvas.height);
    return canvas;
  }

  // callback(file to send, preview data URL or ""): a picture the browser cannot draw is
  // sent as it is, and the server says whether it is one
  function shrink(file, callback) {
    decode(file, function (picture) {
      if (!picture) return callback(file, "");
      var canvas = draw(picture, SIDE), preview = draw(canvas, PREVIEW).toDataURL("image/jpeg", 0.7);
      if (picture.close) picture.close();
      canvas.toBlob(function (blob) {
        if (!blob || blob.size >= file.size) return callback(file, preview);
        var name = (file.name || "photo").replace(/\.[^.]*$/, "") + ".jpg";
        callback(new File([blob], name, { type: "image/jpeg", lastModified: Date.now() }), preview);
      }, "image/jpeg", QUALITY);
    });
  }

  function put(input, file) {
    try {
      var list = new DataTransfer();
      list.items.add(file);
      input.files = list.files;
      return true;
    } catch (e) {
      return false;  // an old browser: the original goes, as without script
    }
  }

  function show(input, preview) {
    var label = input.parentNode, old = label.querySelector(".photo-preview"), remove = label.querySelector(".photo-remove");
    if (old) label.removeChild(old);
    if (remove) label.removeChild(remove);
    label.querySelector(".photo-button").hidden = !!(input.files && input.files.length);
    if (!input.files || !input.files.length) return;
    var shown = document.createElement(preview ? "img" : "span");  // no preview: a picture this browser cannot draw
    shown.className = "photo-preview";
    if (preview) {
      shown.alt = "";
      shown.src = preview;
    } else {
      shown.textContent = input.files[0].name;
    }
    label.appendChild(shown);
    remove = document.createElement("button");
    remove.type = "button";
    remove.className = "photo-remove";
    remove.textContent = "删除";
    remove.addEventListener("click", function () {
      input.value = "";
      delete kept[slot(input)];
      show(input, "");
      reveal(input.closest(".photos"));
      input.focus();
    });
    label.appendChild(remove);
  }

  // the chosen pickers, and the first empty one: nobody scrolls past nine empty pickers
  function reveal(box) {
    var offered = false;
    box.querySelectorAll("input[type=file]").forEach(function (input) {
      var chosen = input.files && input.files.length > 0;
      input.parentNode.hidden = !chosen && offered;
      if (!chosen) offered = true;
    });
  }

  function status(form, text, urgent) {
    var line = form.querySelector(".photo-status");
    if (!line) {
      line = document.createElement("p");
      line.setAttribute("aria-live", "polite");
      form.insertBefore(line, form.querySelector(".submit"));
    }
    line.className = (urgent ? "notice" : "hint") + " photo-status";
    line.textContent = text;
  }

  function chosen(input) {
    var file = input.files && input.files[0], form = input.form;
    if (!file || input.dataset.busy) return;
    input.dataset.busy = "1";
    pending++;
    status(form, "正在处理照片，请稍等……");
    shrink(file, function (smaller, preview) {
      if (smaller !== file) put(input, smaller);
      kept[slot(input)] = { file: input.files[0], preview: preview };
      delete input.dataset.busy;
      show(input, preview);
      reveal(input.closest(".photos"));
      pending--;
      if (!pending) {
        status(form, "");
        var go = waiting;
        waiting = [];
        go.forEach(function (send) { send(); });
      }
    });
  }

  // after a page with errors: the pictures chosen before, unless their question was the problem
  function restore(form) {
    form.querySelectorAll(".photos").forEach(function (box) {
      var field = box.closest(".field");
      if (field && field.querySelector(".error:not(:empty)")) return reveal(box);
      box.querySelectorAll("input[type=file]").forEach(function (input) {
        var saved = kept[slot(input)];
        if (saved && put(input, saved.file)) show(input, saved.preview);
      });
      reveal(box);
    });
  }

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input.matches && input.matches(".photos input[type=file]")) chosen(input);
  });
  // a send waits for pictures still being made smaller
  document.addEventListener("htmx:confirm", function (event) {
    if (!pending || !event.target.matches || !event.target.matches("form.survey")) return;
    event.preventDefault();
    waiting.push(function () { event.detail.issueRequest(true); });
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (window.htmx || !pending || !form.matches || !form.matches("form.survey")) return;
    event.preventDefault();
    waiting.push(function () { form.submit(); });
  });
  document.addEventListener("htmx:load", function (event) {
    var root = event.target;
    if (root.matches && root.matches("form.survey")) restore(root);
  });
  // Offline: localStorage cannot hold pictures, so a send with photos is kept in IndexedDB,
  // its fields and the pictures as made smaller, under its submission key; form.js sends it
  // with its own queue (network back, next load, every 30 s) and the key stores it once.
  // (This script runs before form.js: its sendError listener goes first.)
  function queueStore(mode, work, done) {
    var open;
    try { open = indexedDB.open("qf-photos", 1); } catch (e) { return done(false); }
    open.onupgradeneeded = function () { open.result.createObjectStore("queue", { keyPath: "key" }); };
    open.onerror = function () { done(false); };
    open.onsuccess = function () {
      var base = open.result, request;
      try {
        var tx = base.transaction("queue", mode);
        request = work(tx.objectStore("queue"));
      } catch (e) { base.close(); return done(false); }
      tx.oncomplete = function () { base.close(); done(true, request.result); };
      tx.onabort = function () { base.close(); done(false); };
    };
  }
  var photoQueue = {
    next: function (use, held) {
      queueStore("readonly", function (store) { return store.getAll(); }, function (ok, items) {
        var item = ok && items.filter(function (i) { return !(held && held[i.key]); })[0], body = new FormData(), answers = [];
        if (!item) return use(null);
        item.entries.forEach(function (e) {
          if (e.length === 2) answers.push(e);
          body.append.apply(body, e);
        });
        use({ path: item.path, key: item.key, body: body, answers: answers });
      });
    },
    drop: function (key) { queueStore("readwrite", function (store) { return store.delete(key); }, function () {}); }
  };
  function enqueue(form, done) {
    var entries = [], key = form.querySelector("[name=_key]");
    new FormData(form).forEach(function (value, name) {
      entries.push(typeof value === "string" ? [name, value] : [name, value, value.name]);
    });
    queueStore("readwrite", function (store) {
      return store.put({ key: key ? key.value : "", path: form.getAttribute("action"), entries: entries, at: Date.now() });
    }, done);
  }
  document.addEventListener("htmx:sendError", function (event) {
    var form = event.target, photos = form.querySelectorAll && form.querySelectorAll(".photos input[type=file]");
    if (!photos || !Array.prototype.some.call(photos, function (input) { return input.files.length; })) return;
    event.stopImmediatePropagation();
    var offline = window.qfOffline;
    enqueue(form, function (ok) {
      if (ok && offline) offline.saved(form);
      else status(form, "照片要联网才能上传，这次没有提交成功。填写的内容和照片都还在，请有网络时再点“提交”，不要关闭本页。", true);
      if (offline) offline.later();
    });
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var key = event.detail.elt.querySelector && event.detail.elt.querySelector("[name=_key]");
    if (key && event.detail.xhr.status === 200) photoQueue.drop(key.value);  // sent: an older queued copy need not go
  });
  document.addEventListener("DOMContentLoaded", function () {
    if (window.qfOffline && window.indexedDB) window.qfOffline.queues.push(photoQueue);  // before form.js sends its queue
    document.querySelectorAll("form.survey").forEach(restore);
  });
})();
