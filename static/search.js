// Progressive enhancement of the search pages; every form works without this file.
// - the upload form: drag and drop, paste, preview, busy state;
// - the photo is kept in the browser (IndexedDB, under a random token sent with the form)
//   so the results page can post it again: more results, filters, a region;
// - a box drawn on the query photo (corner handles adjust it), "Search this region".
(function () {
  "use strict";
  document.documentElement.classList.add("has-js");
  var DB = "lookalike", STORE = "photos", KEEP = 5;

  function openDb() {
    return new Promise(function (resolve, reject) {
      var request = indexedDB.open(DB, 1);
      request.onupgradeneeded = function () { request.result.createObjectStore(STORE); };
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error); };
    });
  }
  function withStore(mode, work) {
    return openDb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx = db.transaction(STORE, mode);
        var result = work(tx.objectStore(STORE));
        tx.oncomplete = function () { resolve(result && result.result); };
        tx.onerror = function () { reject(tx.error); };
      });
    });
  }
  function savePhoto(token, file) {
    return withStore("readwrite", function (store) {
      store.put({file: file, name: file.name, type: file.type, at: Date.now()}, token);
      var keys = store.getAllKeys();
      keys.onsuccess = function () {  // keep the last few photos only
        var all = keys.result;
        if (all.length > KEEP) {
          var old = store.getAll();
          old.onsuccess = function () {
            old.result.map(function (v, i) { return [v.at, all[i]]; })
              .sort(function (a, b) { return a[0] - b[0]; })
              .slice(0, all.length - KEEP)
              .forEach(function (pair) { store.delete(pair[1]); });
          };
        }
      };
    });
  }
  function loadPhoto(token) {
    return withStore("readonly", function (store) { return store.get(token); });
  }
  function newToken() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }
  function tokenField(form, token) {
    var field = form.querySelector("input[name=photo_token]");
    if (!field) {
      field = document.createElement("input");
      field.type = "hidden";
      field.name = "photo_token";
      form.appendChild(field);
    }
    field.value = token;
  }

  // The upload form: drop, paste, preview; the photo is kept before the form is sent.
  document.querySelectorAll("form[data-dropzone]").forEach(function (form) {
    var input = form.querySelector("input[type=file]");
    var zone = form.querySelector(".drop");
    var preview = form.querySelector(".query-preview");
    if (!input || !zone) { return; }

    function show(file) {
      if (!preview || !file || !file.type.startsWith("image/")) { return; }
      var url = URL.createObjectURL(file);
      preview.onload = function () { URL.revokeObjectURL(url); };
      preview.src = url;
      preview.hidden = false;
    }
    function use(files) {
      if (!files || !files.length) { return; }
      var transfer = new DataTransfer();
      transfer.items.add(files[0]);
      input.files = transfer.files;
      show(files[0]);
    }
    input.addEventListener("change", function () { show(input.files[0]); });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) { use(e.dataTransfer.files); });
    document.addEventListener("paste", function (e) {
      var items = (e.clipboardData && e.clipboardData.files) || [];
      if (items.length) { use(items); }
    });
  });

  document.querySelectorAll("form[data-keep-photo]").forEach(function (form) {
    var input = form.querySelector("input[type=file]");
    form.addEventListener("submit", function (e) {
      if (form.dataset.kept || !input || !input.files.length || !window.indexedDB) { return; }
      e.preventDefault();
      var token = newToken();
      tokenField(form, token);
      savePhoto(token, input.files[0]).catch(function () { return null; }).then(function () {
        form.dataset.kept = "1";
        form.requestSubmit();
        delete form.dataset.kept;  // a later search (after Back) keeps its own photo
      });
    });
  });

  // Forms that post the photo again: fill in the photo this page was made from.
  var needing = document.querySelectorAll("form[data-needs-photo]");
  var holder = document.querySelector("[data-photo-token]");
  var pageToken = holder && holder.dataset.photoToken;
  if (needing.length && pageToken && window.indexedDB) {
    loadPhoto(pageToken).then(function (kept) {
      if (!kept) { return; }
      var file = new File([kept.file], kept.name || "photo", {type: kept.type});
      needing.forEach(function (form) {
        var input = form.querySelector("input[type=file]");
        var transfer = new DataTransfer();
        transfer.items.add(file);
        input.files = transfer.files;
        tokenField(form, pageToken);
        form.classList.add("photo-kept");
      });
    }).catch(function () { /* the forms still ask for the photo */ });
  }

  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (e.defaultPrevented) { return; }
      form.classList.add("busy");
      var button = form.querySelector("button[type=submit]");
      if (button) { button.disabled = true; }
    });
  });

  // A box on the query photo: drag to draw, drag a corner handle to adjust, then search it.
  var frame = document.querySelector("[data-box-frame]");
  var image = frame && frame.querySelector("[data-box-image]");
  var region = document.querySelector("[data-region-form]");
  if (!frame || !image || !region) { return; }
  var value = region.querySelector("[data-box-value]");
  var button = region.querySelector("[data-region-button]");
  var box = document.createElement("div");
  box.className = "box";
  box.hidden = true;
  frame.appendChild(box);
  frame.classList.add("drawing");
  var start = null;

  function point(e) {
    var rect = image.getBoundingClientRect();
    return {x: Math.min(Math.max((e.clientX - rect.left) / rect.width, 0), 1),
            y: Math.min(Math.max((e.clientY - rect.top) / rect.height, 0), 1)};
  }
  function draw(a, b) {
    var x0 = Math.min(a.x, b.x), x1 = Math.max(a.x, b.x);
    var y0 = Math.min(a.y, b.y), y1 = Math.max(a.y, b.y);
    box.style.left = (x0 * image.clientWidth) + "px";
    box.style.top = (y0 * image.clientHeight) + "px";
    box.style.width = ((x1 - x0) * image.clientWidth) + "px";
    box.style.height = ((y1 - y0) * image.clientHeight) + "px";
    box.hidden = false;
    return [x0, y0, x1, y1];
  }
  image.addEventListener("dragstart", function (e) { e.preventDefault(); });
  ["nw", "ne", "sw", "se"].forEach(function (corner) {
    var handle = document.createElement("span");
    handle.className = "handle " + corner;
    handle.dataset.corner = corner;
    box.appendChild(handle);
  });
  var current = null;  // the box drawn, as fractions [x0, y0, x1, y1]
  frame.addEventListener("pointerdown", function (e) {
    var corner = e.target.dataset && e.target.dataset.corner;
    // A handle moves its corner: the drag starts from the opposite one.
    start = corner && current
      ? {x: corner.indexOf("w") >= 0 ? current[2] : current[0],
         y: corner.indexOf("n") >= 0 ? current[3] : current[1]}
      : point(e);
    frame.setPointerCapture(e.pointerId);
  });
  frame.addEventListener("pointermove", function (e) { if (start) { draw(start, point(e)); } });
  frame.addEventListener("pointerup", function (e) {
    if (!start) { return; }
    var b = draw(start, point(e));
    start = null;
    current = b;
    var big = b[2] - b[0] >= 0.02 && b[3] - b[1] >= 0.02;
    value.value = b.map(function (v) { return v.toFixed(4); }).join(",");
    button.disabled = !big;
    if (!big) { box.hidden = true; }
  });
  var current = frame.dataset.box;
  if (current) {
    var c = current.split(",").map(Number);
    current = draw({x: c[0], y: c[1]}, {x: c[2], y: c[3]});
  }
})();
