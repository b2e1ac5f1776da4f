// Progressive enhancement only: every state lives in the URL and the page
// works without this file. It shows the loading state, submits the form
// when a select changes, and drops empty fields from the query string.
(function () {
  "use strict";
  function loading() { document.body.classList.add("loading"); }
  window.addEventListener("pageshow", function () { document.body.classList.remove("loading"); });
  var form = document.getElementById("filters");
  if (form) {
    form.addEventListener("submit", function () {
      Array.prototype.forEach.call(form.elements, function (el) {
        if (el.name && (el.tagName === "INPUT" && el.type !== "checkbox" || el.tagName === "SELECT") && !el.value) {
          el.disabled = true; // keep URLs short: no empty parameters
        }
      });
      loading();
      setTimeout(function () {
        Array.prototype.forEach.call(form.elements, function (el) { el.disabled = false; });
      }, 0);
    });
    ["product", "period", "tz", "size"].forEach(function (name) {
      var el = form.elements[name];
      if (el && el.tagName === "SELECT") {
        el.addEventListener("change", function () {
          if (name === "period" && el.value === "custom") { return; } // wait for the dates
          form.requestSubmit();
        });
      }
    });
  }
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest && ev.target.closest("a[href]");
    if (a && !a.hasAttribute("download") && a.origin === location.origin && !ev.ctrlKey && !ev.metaKey && !ev.shiftKey) {
      loading();
    }
  });
  // Close open dropdowns when clicking elsewhere.
  document.addEventListener("click", function (ev) {
    document.querySelectorAll("details.dropdown[open], details.switcher[open]").forEach(function (d) {
      if (!d.contains(ev.target)) { d.removeAttribute("open"); }
    });
  });
})();
