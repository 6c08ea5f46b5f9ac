// khupho console: live refresh of the review feed over Server-Sent Events. No framework.
"use strict";
(function () {
  var box = document.getElementById("items");
  if (!box || !window.EventSource) return;
  var dot = document.getElementById("live");
  var pending = null;
  function refresh() {
    pending = null;
    fetch(box.dataset.list, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { box.innerHTML = html; })
      .catch(function () { /* the next change tries again */ });
  }
  var source = new EventSource(box.dataset.live);
  source.addEventListener("open", function () { if (dot) dot.classList.add("on"); });
  source.addEventListener("error", function () { if (dot) dot.classList.remove("on"); });
  source.addEventListener("item", function () {
    // Several items change together when a clip is busy: one refresh for a burst.
    if (!pending) pending = setTimeout(refresh, 250);
  });
})();
