// latchkey's pages work without this script; it makes them nicer:
// - forms marked data-authorize (new, edit, reconnect) open the provider's consent page in a popup;
// - the handle field says, as you type, why a handle is refused;
// - delete forms ask first; copy buttons copy.
// No inline handlers (the Content-Security-Policy forbids them): everything is wired here.
(function () {
  "use strict";

  var POPUP_NAME = "latchkey-authorize";
  var POPUP_FEATURES = "width=600,height=720";
  var HANDLE_PATTERN = /^[a-z0-9-]{1,64}$/;

  // Where a form shows an error: next to its field, else above the form, else at the top of the page.
  function errorSlot(form, field) {
    var slot = null;
    if (field) { slot = form.querySelector('[data-error-for="' + field + '"]'); }
    return slot || document.querySelector("[data-form-error]") || document.querySelector("[data-page-error]");
  }

  function clearErrors(form) {
    form.querySelectorAll("[data-error-for]").forEach(function (slot) { slot.textContent = ""; });
    form.querySelectorAll('[aria-invalid="true"]').forEach(function (input) {
      input.removeAttribute("aria-invalid");
    });
    document.querySelectorAll("[data-form-error], [data-page-error]").forEach(function (box) {
      box.textContent = "";
      box.hidden = true;
    });
  }

  function showError(form, message, field) {
    var slot = errorSlot(form, field);
    if (!slot) { window.alert(message); return; }
    slot.textContent = message;
    slot.hidden = false;
    var input = field ? form.querySelector('[name="' + field + '"]') : null;
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } else if (slot.hasAttribute("data-form-error") || slot.hasAttribute("data-page-error")) {
      slot.scrollIntoView({ block: "nearest" });
    }
  }

  // Saves or reconnects with fetch, then opens the authorization link in the popup. The popup is opened
  // synchronously in the submit handler, so that browsers treat it as the person's action and do not block it.
  function submitAuthorize(event) {
    var form = event.currentTarget;
    event.preventDefault();
    var submit = form.querySelector('button[type="submit"]');
    if (submit && submit.disabled) { return; }
    clearErrors(form);
    var popup = window.open("about:blank", POPUP_NAME, POPUP_FEATURES);
    if (submit) { submit.disabled = true; }
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { "Accept": "application/json" },
      credentials: "same-origin"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        return { ok: response.ok, status: response.status, body: body };
      });
    }).then(function (result) {
      var link = result.body && result.body.authorization_link;
      if (result.ok && link) {
        if (popup && !popup.closed) {
          popup.location.href = link;
        } else {
          // The popup was blocked: continue in this tab; the flow's last page leads back to the list.
          window.location.assign(link);
        }
        return;
      }
      if (popup) { popup.close(); }
      var message = (result.body && result.body.error) ||
        "latchkey answered with status " + result.status + ". Reload the page and try again.";
      showError(form, message, result.body && result.body.field);
    }).catch(function () {
      if (popup) { popup.close(); }
      showError(form, "latchkey could not be reached. Check that the server is running and try again.", null);
    }).then(function () {
      if (submit) { submit.disabled = false; }
    });
  }

  // The popup's last page posts { type: "latchkey:authorization", ok, handle } to this window; show the list,
  // so that the connection appears with its new status.
  window.addEventListener("message", function (event) {
    if (event.origin !== window.location.origin) { return; }
    if (!event.data || event.data.type !== "latchkey:authorization") { return; }
    window.location.assign("/connections");
  });

  // Why a handle is refused, in words; "" when it is fine (or still empty).
  function handleProblem(value) {
    if (value === "" || HANDLE_PATTERN.test(value)) { return ""; }
    var length = Array.from(value).length;
    if (length > 64) { return "The handle is " + length + " characters long; at most 64 are allowed."; }
    var bad = Array.from(value).find(function (c) { return !/[a-z0-9-]/.test(c); });
    if (/[A-Z]/.test(bad)) {
      return "Uppercase letters are not allowed: use \"" + bad.toLowerCase() + "\" instead of \"" + bad + "\".";
    }
    if (/\s/.test(bad)) { return "Spaces are not allowed: use a hyphen (-) instead."; }
    return "\"" + bad + "\" is not allowed: use only lowercase letters, digits and hyphens.";
  }

  function checkHandle(input) {
    var problem = handleProblem(input.value);
    input.setCustomValidity(problem);
    var slot = input.form && input.form.querySelector('[data-error-for="handle"]');
    if (slot) { slot.textContent = problem; }
    if (problem) { input.setAttribute("aria-invalid", "true"); } else { input.removeAttribute("aria-invalid"); }
  }

  function confirmDelete(event) {
    var form = event.currentTarget;
    var handle = form.getAttribute("data-delete");
    var question = "Delete the connection '" + handle + "'? Scripts using it will stop working.";
    if (!window.confirm(question)) {
      event.preventDefault();
      return;
    }
    // Confirmed here, so the server deletes at once instead of showing its own confirmation page.
    var confirmed = form.querySelector('input[name="confirmed"]');
    if (!confirmed) {
      confirmed = document.createElement("input");
      confirmed.type = "hidden";
      confirmed.name = "confirmed";
      form.appendChild(confirmed);
    }
    confirmed.value = "yes";
  }

  function copy(event) {
    var button = event.currentTarget;
    var label = button.textContent;
    navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
      button.textContent = "Copied";
    }, function () {
      button.textContent = "Copy failed";
    }).then(function () {
      window.setTimeout(function () { button.textContent = label; }, 2000);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-authorize]").forEach(function (form) {
      form.addEventListener("submit", submitAuthorize);
    });
    document.querySelectorAll("form[data-delete]").forEach(function (form) {
      form.addEventListener("submit", confirmDelete);
    });
    document.querySelectorAll("input[data-handle-input]").forEach(function (input) {
      input.addEventListener("input", function () { checkHandle(input); });
      // A value shown again after a refused save: say what is wrong with it, but keep the server's message
      // (for example "already taken") when the value itself is fine.
      if (handleProblem(input.value)) { checkHandle(input); }
    });
    if (navigator.clipboard && window.isSecureContext) {
      document.querySelectorAll("button[data-copy]").forEach(function (button) {
        button.hidden = false;
        button.addEventListener("click", copy);
      });
    }
  });
})();
