// Ends an authorization popup: tells the window that opened it, at this server's exact origin, and closes.
// Without an opener (the popup was blocked and the flow ran in the same tab), it returns to the list.
(function () {
  "use strict";
  var result = document.getElementById("latchkey-result");
  if (!result) { return; }
  var ok = result.dataset.ok === "true";
  var origin = result.dataset.origin;
  var message = { type: "latchkey:authorization", ok: ok, handle: result.dataset.handle };
  if (window.opener && !window.opener.closed) {
    try { window.opener.postMessage(message, origin); } catch (e) { /* the opener navigated elsewhere */ }
    if (ok) { window.close(); }
  } else if (ok) {
    window.setTimeout(function () { window.location.assign("/connections"); }, 1500);
  }
})();
