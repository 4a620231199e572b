// Progressive enhancement of the search form: drag and drop, paste, preview, busy state.
// The form works without this file.
(function () {
  "use strict";
  document.documentElement.classList.add("has-js");
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
    form.addEventListener("submit", function () {
      form.classList.add("busy");
      var button = form.querySelector("button[type=submit]");
      if (button) { button.disabled = true; }
    });
  });
})();
