// khupho resident page: "use my location" fills the report's lat/long (asked only on a tap). No framework.
"use strict";
(function () {
  var button = document.getElementById("locate");
  if (!button || !navigator.geolocation) return;
  var form = button.form || document.getElementById("report-form");
  var note = document.getElementById("located");
  button.parentElement.hidden = false;
  button.addEventListener("click", function () {
    navigator.geolocation.getCurrentPosition(
      function (pos) {
        form.elements.lat.value = pos.coords.latitude.toFixed(6);
        form.elements.long.value = pos.coords.longitude.toFixed(6);
        note.textContent = note.dataset.ok + " (" + form.elements.lat.value + ", " + form.elements.long.value + ")";
      },
      function () { note.textContent = note.dataset.fail; },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 }
    );
  });
})();
