// Plumb's only script: an opt-in refresh of the page every minute, remembered in this browser.
// Every page works without it.
(function () {
  "use strict";
  var box = document.getElementById("auto-refresh");
  if (!box) {
    return;
  }
  var key = "plumb.autoRefresh";
  var timer = null;
  function apply() {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    if (box.checked) {
      timer = setTimeout(function () { window.location.reload(); }, 60000);
    }
  }
  try {
    box.checked = window.localStorage.getItem(key) === "on";
  } catch (e) {
    box.checked = false;
  }
  box.addEventListener("change", function () {
    try {
      window.localStorage.setItem(key, box.checked ? "on" : "off");
    } catch (e) {
      // Storage may be off; the box still works for this page.
    }
    apply();
  });
  apply();
})();
