// Progressive enhancement only: every state lives in the URL and the page
// works without this file. It shows the loading state, drops empty fields
// from the query string, opens an action's details in a dialog, closes
// pickers with Escape, shows the filters on phones behind one button and,
// on an admin's first visit, switches the page to the browser's time zone.
// Nothing submits on change: the admin applies the form when ready.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  function loading() { document.body.classList.add("loading"); }
  window.addEventListener("pageshow", function () { document.body.classList.remove("loading"); });
  var csrf = document.querySelector("meta[name=csrf-token]");
  var prefsUrl = document.body.getAttribute("data-prefs-url");
  function savePref(key, value) {
    if (!csrf || !prefsUrl) { return Promise.resolve({ ok: false }); }
    var data = new URLSearchParams({ js: "1", csrf_token: csrf.content });
    data.set(key, value);
    return fetch(prefsUrl, {
      method: "POST", credentials: "same-origin", body: data, keepalive: true,
      headers: { "X-CSRFToken": csrf.content }
    });
  }

  var form = document.getElementById("filters");
  if (form) {
    var tzInput = form.elements.tz;
    var tzShown = tzInput ? tzInput.value : "";
    form.addEventListener("submit", function () {
      // A zone the admin picked is remembered for their next visits.
      if (tzInput && tzInput.value && tzInput.value !== tzShown) { savePref("tz", tzInput.value); }
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
    // A reversed custom period is flagged while typing; the server says so too.
    var from = form.elements.from, to = form.elements.to, period = form.elements.period;
    var msg = document.getElementById("period-check");
    function checkPeriod() {
      if (!from || !to || !msg) { return; }
      var bad = period.value === "custom" && from.value && to.value && from.value > to.value;
      from.setAttribute("aria-invalid", bad ? "true" : "false");
      to.setAttribute("aria-invalid", bad ? "true" : "false");
      msg.hidden = !bad;
      document.querySelectorAll("[data-testid=export]").forEach(function (b) {
        if (bad) { b.setAttribute("aria-disabled", "true"); b.classList.add("disabled"); }
        else if (!b.disabled) { b.removeAttribute("aria-disabled"); b.classList.remove("disabled"); }
      });
    }
    [from, to, period].forEach(function (el) { if (el) { el.addEventListener("input", checkPeriod); el.addEventListener("change", checkPeriod); } });
    if (period) {
      period.addEventListener("change", function () {
        if (period.value === "custom" && from) { from.focus(); }
      });
    }
  }
  document.addEventListener("click", function (ev) {
    var exp = ev.target.closest && ev.target.closest("[data-testid=export][aria-disabled=true]");
    if (exp) { ev.preventDefault(); }
  }, true);

  // Phones: the filters and facets behind one button.
  var toggle = document.querySelector(".filters-toggle");
  if (toggle) {
    toggle.addEventListener("click", function () {
      var open = document.body.classList.toggle("filters-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  document.addEventListener("click", function (ev) {
    var a = ev.target.closest && ev.target.closest("a[href]");
    if (a && !a.hasAttribute("download") && !a.classList.contains("row-open") && a.origin === location.origin &&
        !ev.ctrlKey && !ev.metaKey && !ev.shiftKey && !ev.defaultPrevented) {
      loading();
    }
  });
  // Close open dropdowns when clicking elsewhere, and with Escape.
  document.addEventListener("click", function (ev) {
    document.querySelectorAll("details.dropdown[open], details.switcher[open]").forEach(function (d) {
      if (!d.contains(ev.target)) { d.removeAttribute("open"); }
    });
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "Escape") { return; }
    document.querySelectorAll("details.dropdown[open], details.switcher[open]").forEach(function (d) {
      var hadFocus = d.contains(document.activeElement);
      d.removeAttribute("open");
      if (hadFocus) { d.querySelector("summary").focus(); }
    });
  });

  // Action details in a dialog: the row's link is the permalink page; we
  // show that page's #event-details part. showModal() keeps focus inside,
  // Escape closes it, and focus returns to the row's link.
  var dialog = document.getElementById("event-dialog");
  if (dialog && typeof dialog.showModal === "function") {
    var body = dialog.querySelector(".drawer-body");
    var opener = null;
    var open = function (link) {
      opener = link;
      body.textContent = body.getAttribute("data-loading");
      dialog.showModal();
      fetch(link.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var part = doc.getElementById("event-details");
          if (!part) { throw new Error("no details"); }
          body.replaceChildren(document.importNode(part, true));
          var title = body.querySelector("#event-title");
          if (title) { title.setAttribute("tabindex", "-1"); title.focus(); }
        })
        .catch(function () {
          var p = document.createElement("p");
          p.setAttribute("role", "alert");
          p.textContent = body.getAttribute("data-failed") + " ";
          var a = document.createElement("a");
          a.href = link.href; a.textContent = link.href;
          p.appendChild(a);
          body.replaceChildren(p);
        });
    };
    document.addEventListener("click", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) { return; }
      var link = ev.target.closest && ev.target.closest("a.row-open");
      if (!link) {
        // A click anywhere on a row (not on its other links) opens it too.
        var row = ev.target.closest && ev.target.closest("tr[data-event]");
        if (!row || ev.target.closest("a, button, input") || String(window.getSelection())) { return; }
        link = row.querySelector("a.row-open");
        if (!link) { return; }
      }
      ev.preventDefault();
      open(link);
    });
    dialog.querySelector(".drawer-close").addEventListener("click", function () { dialog.close(); });
    dialog.addEventListener("click", function (ev) { if (ev.target === dialog) { dialog.close(); } });
    dialog.addEventListener("close", function () {
      body.replaceChildren();
      if (opener) { opener.focus(); }
    });
  }

  // First visit: no zone in the address and none saved: use the browser's.
  var auto = document.body.getAttribute("data-tz-auto");
  if (auto && window.Intl && csrf) {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && zone !== auto) {
      savePref("tz", zone).then(function (r) { if (r.ok) { loading(); location.reload(); } });
    }
  }
})();
