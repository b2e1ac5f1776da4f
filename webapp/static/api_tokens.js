// The API tokens page: the Copy button beside a new token's secret, which the
// page shows once. Without JavaScript the field is still there to select.
(function () {
  "use strict";
  var created = document.getElementById("new-token");
  if (created) { created.focus(); }
  Array.prototype.forEach.call(document.querySelectorAll("[data-copy]"), function (button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    var status = document.querySelector("[data-copy-status]");
    button.addEventListener("click", function () {
      field.select();
      function done() {
        if (status) { status.textContent = button.getAttribute("data-copied"); }
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () {
          document.execCommand("copy"); done();
        });
      } else {
        document.execCommand("copy"); done();
      }
    });
  });
})();
