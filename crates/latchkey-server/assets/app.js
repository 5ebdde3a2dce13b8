// latchkey's pages work without this script; it makes them nicer:
// - forms marked data-authorize (new, edit, reconnect) open the provider's consent page in a popup, and the
//   list updates in place when the popup reports back (or closes);
// - the handle field says, as you type, why a handle is refused (its format, or that you already have it);
// - forms marked data-confirm ask first; Copy buttons copy;
// - the service picker opens the chosen service's form; a device authorization's page, and the list, refresh
//   a pending device code row until the connection is no longer pending.
// No inline handlers (the Content-Security-Policy forbids them): everything is wired here, by delegation, so
// rows swapped in later work the same.
(function () {
  "use strict";

  var POPUP_NAME = "latchkey-authorize";
  var POPUP_FEATURES = "popup,width=600,height=720";
  var HANDLE_PATTERN = /^[a-z0-9-]{1,64}$/;
  var HANDLE_CHECK_DELAY_MS = 250;
  var AWAITING_KEY = "latchkey:awaiting";

  // Copy buttons are inert without this script; the stylesheet keeps their space until it runs.
  document.documentElement.classList.add("js");

  // ---- Errors on forms -----------------------------------------------------------------------------------

  // Where a form shows an error: next to its field, else above the form, else in its row of the list (where
  // the status sentence is: nothing moves), else at the top of the page.
  function errorSlot(form, field) {
    var slot = null;
    if (field) { slot = form.querySelector('[data-error-for="' + field + '"]'); }
    var row = form.closest("li.connection");
    return slot || document.querySelector("[data-form-error]") ||
      (row && row.querySelector("[data-status-note]")) || document.querySelector("[data-page-error]");
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
    var section = slot.closest("details");
    if (section) { section.open = true; }
    if (slot.hasAttribute("data-status-note")) { slot.classList.add("problem"); }
    var input = field ? form.querySelector('[name="' + field + '"]') : null;
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } else if (slot.hasAttribute("data-form-error") || slot.hasAttribute("data-page-error")) {
      slot.scrollIntoView({ block: "nearest" });
    }
  }

  // ---- The authorization popup ---------------------------------------------------------------------------

  // The authorization in progress: { handle, popup, timer }.
  var current = null;

  function onList() { return document.querySelector("[data-connection-list]") !== null; }

  function rowOf(handle) {
    return document.querySelector('li.connection[data-handle="' + handle + '"]');
  }

  // Handles whose authorization was started from this tab and may still end; kept across page loads, so the
  // list can catch up when the popup lost its link to this window (some providers cut it).
  function awaiting() {
    try { return JSON.parse(window.sessionStorage.getItem(AWAITING_KEY) || "[]"); } catch (e) { return []; }
  }

  function setAwaiting(list) {
    try { window.sessionStorage.setItem(AWAITING_KEY, JSON.stringify(list.slice(-20))); } catch (e) { /* private */ }
  }

  function remember(handle) {
    var list = awaiting().filter(function (h) { return h !== handle; });
    list.push(handle);
    setAwaiting(list);
  }

  function settle(handle) {
    setAwaiting(awaiting().filter(function (h) { return h !== handle; }));
  }

  // Replaces the row of `handle` with the server's current one, in place: same position, and the focus
  // stays on the same kind of control.
  function refreshRow(handle) {
    var row = rowOf(handle);
    if (!row) { return Promise.resolve(); }
    return fetch("/connections/" + encodeURIComponent(handle) + "/row", {
      headers: { "Accept": "text/html" },
      credentials: "same-origin"
    }).then(function (response) {
      if (response.status === 404) { row.remove(); settle(handle); return; }
      if (!response.ok) { return; }
      return response.text().then(function (html) {
        var template = document.createElement("template");
        template.innerHTML = html.trim();
        var fresh = template.content.querySelector("li.connection");
        var old = rowOf(handle);
        if (!fresh || !old) { return; }
        var focused = old.contains(document.activeElement) ? document.activeElement : null;
        var focusKey = focused ? (focused.textContent || "").trim() : null;
        var usage = old.querySelector("details.usage");
        var freshUsage = fresh.querySelector("details.usage");
        if (usage && freshUsage && usage.open) { freshUsage.open = true; fillUsage(freshUsage); }
        old.replaceWith(fresh);
        if (fresh.getAttribute("data-status") !== "pending") { settle(handle); }
        if (focusKey) {
          var again = Array.prototype.find.call(fresh.querySelectorAll("a, button"), function (el) {
            return (el.textContent || "").trim() === focusKey;
          });
          if (again) { again.focus(); }
        }
      });
    }).catch(function () { /* the next focus tries again */ });
  }

  // The authorization of `handle` ended (the popup reported back, or closed): show its result.
  function finish(handle) {
    if (!current || current.handle !== handle) { return; }
    window.clearInterval(current.timer);
    current = null;
    if (onList()) {
      refreshRow(handle);
    } else {
      window.location.assign("/connections#c-" + encodeURIComponent(handle));
    }
  }

  function waiting(handle) {
    var note = onList() ? rowOf(handle) && rowOf(handle).querySelector("[data-status-note]")
      : document.querySelector("[data-flow-status]");
    if (note) {
      note.classList.remove("problem");
      note.textContent = "Waiting for you to approve access in the provider's window…";
    }
  }

  function watch(popup, handle) {
    if (current) { window.clearInterval(current.timer); }
    current = { handle: handle, popup: popup, timer: 0 };
    current.timer = window.setInterval(function () {
      if (popup.closed) { finish(handle); }
    }, 500);
  }

  // Saves or reconnects with fetch, then opens the authorization link in the popup. The popup is opened
  // synchronously in the submit handler, so that browsers treat it as the person's action and do not block it.
  function submitAuthorize(form, event) {
    event.preventDefault();
    var submit = form.querySelector('button[type="submit"]');
    if (submit && submit.disabled) { return; }
    var handleInput = form.querySelector('[name="handle"]');
    var handle = handleInput ? handleInput.value.trim() : form.getAttribute("data-handle");
    clearErrors(form);
    // Client credentials and device code need no consent window; only the code flow opens one. The form says
    // which grant in its field, a row of the list in its data-grant.
    var field = form.querySelector('[name="grant_type"]');
    var row = form.closest("li.connection");
    var grant = field ? field.value : (row && row.getAttribute("data-grant")) || "authorization_code";
    var popup = grant !== "authorization_code" ? null : window.open("about:blank", POPUP_NAME, POPUP_FEATURES);
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
      var next = result.body && result.body.next;
      if (result.ok && typeof next === "string" && next.charAt(0) === "/" && next.charAt(1) !== "/") {
        // No consent window for this grant (client credentials, device code): on to the next page.
        if (popup) { popup.close(); }
        settle(handle);
        window.location.assign(next);
        return;
      }
      if (result.ok && link) {
        remember(handle);
        if (popup && !popup.closed) {
          popup.location.href = link;
          waiting(handle);
          watch(popup, handle);
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

  // The popup's last page posts { type: "latchkey:authorization", ok, handle } to this window, naming this
  // server's origin; anything else is ignored.
  window.addEventListener("message", function (event) {
    if (event.origin !== window.location.origin) { return; }
    var data = event.data;
    if (!data || data.type !== "latchkey:authorization" || typeof data.handle !== "string") { return; }
    if (current && current.handle === data.handle) {
      finish(data.handle);
    } else if (onList()) {
      refreshRow(data.handle);
    }
  });

  // Back in this window after an authorization whose popup could not report back: catch up on its rows.
  window.addEventListener("focus", function () {
    if (!onList()) { return; }
    awaiting().forEach(function (handle) {
      if (!current || current.handle !== handle) { refreshRow(handle); }
    });
  });

  // ---- The handle field ----------------------------------------------------------------------------------

  // Why a handle is refused, in words; "" when its form is fine (or it is still empty).
  function handleProblem(value) {
    if (value === "" || HANDLE_PATTERN.test(value)) { return ""; }
    var chars = Array.from(value);
    if (chars.length > 64) {
      return "The handle is " + chars.length + " characters long; at most 64 are allowed.";
    }
    var bad = chars.find(function (c) { return !/[a-z0-9-]/.test(c); });
    if (/[A-Z]/.test(bad)) {
      return "Uppercase letters are not allowed: use \"" + bad.toLowerCase() + "\" instead of \"" + bad + "\".";
    }
    if (/\s/.test(bad)) { return "Spaces are not allowed: use a hyphen (-) instead."; }
    return "\"" + bad + "\" is not allowed: use only lowercase letters, digits and hyphens.";
  }

  function setHandleMessage(input, message) {
    input.setCustomValidity(message);
    var slot = input.form && input.form.querySelector('[data-error-for="handle"]');
    if (slot && slot.textContent !== message) { slot.textContent = message; }
    if (message) { input.setAttribute("aria-invalid", "true"); } else { input.removeAttribute("aria-invalid"); }
  }

  var handleTimer = 0;
  var handleRequest = null;

  // Checks the format at once, then asks the server whether the handle is free (after a short pause in
  // typing; an answer for a value no longer in the field is dropped).
  function checkHandle(input) {
    var value = input.value;
    window.clearTimeout(handleTimer);
    if (handleRequest) { handleRequest.abort(); handleRequest = null; }
    var problem = handleProblem(value);
    setHandleMessage(input, problem);
    if (problem || value === "") { return; }
    handleTimer = window.setTimeout(function () {
      var controller = typeof AbortController === "function" ? new AbortController() : null;
      handleRequest = controller;
      fetch("/connections/handle-check?handle=" + encodeURIComponent(value), {
        headers: { "Accept": "application/json" },
        credentials: "same-origin",
        signal: controller ? controller.signal : undefined
      }).then(function (response) {
        return response.ok ? response.json() : null;
      }).then(function (answer) {
        if (!answer || input.value !== value) { return; }
        setHandleMessage(input, answer.ok ? "" : String(answer.message || "This handle cannot be used."));
      }).catch(function () { /* offline or superseded: the server checks again on save */ });
    }, HANDLE_CHECK_DELAY_MS);
  }

  // ---- Confirmations and copying -------------------------------------------------------------------------

  function confirmSubmit(form, event) {
    if (!window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
      return;
    }
    // Confirmed here, so the server acts at once instead of showing its own confirmation page.
    var confirmed = form.querySelector('input[name="confirmed"]');
    if (!confirmed) {
      confirmed = document.createElement("input");
      confirmed.type = "hidden";
      confirmed.name = "confirmed";
      form.appendChild(confirmed);
    }
    confirmed.value = "yes";
  }

  function selectText(element) {
    if (typeof element.select === "function") { element.select(); return; }
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // The text of a copy target: a field's value or an element's text. Several ids are copied together, as one
  // snippet (the shared getOAuthToken function and a row's call).
  function textOf(target) {
    return "value" in target && target.tagName !== "BUTTON" ? target.value : target.textContent;
  }

  function copy(button) {
    var targets = button.getAttribute("data-copy-target").split(/\s+/).map(function (id) {
      return document.getElementById(id);
    }).filter(Boolean);
    if (targets.length === 0) { return; }
    var target = targets[targets.length - 1];
    var text = targets.map(textOf).join("\n\n");
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    function show(words) {
      button.textContent = words;
      window.setTimeout(function () { button.textContent = label; }, 2000);
    }
    function fallback() {
      selectText(target);
      var done = false;
      try { done = document.execCommand("copy"); } catch (e) { done = false; }
      show(done ? "Copied" : "Press Ctrl+C");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { show("Copied"); }, fallback);
    } else {
      fallback();
    }
  }

  // ---- "Use it" ------------------------------------------------------------------------------------------

  var USAGE_PLACEHOLDER = "__handle__";

  // Fills a row's "Use it" from the list's one template, with the row's handle (lowercase letters, digits and
  // hyphens only, so it is safe in markup), when it first opens.
  function fillUsage(details) {
    if (details.hasAttribute("data-filled")) { return; }
    var template = document.getElementById("usage-template");
    var row = details.closest("li.connection");
    var handle = row ? row.getAttribute("data-handle") : "";
    if (!template || !HANDLE_PATTERN.test(handle)) { return; }
    var fallback = details.querySelector(".snippet-fallback");
    if (fallback) { fallback.remove(); }
    var holder = document.createElement("div");
    holder.innerHTML = template.innerHTML.split(USAGE_PLACEHOLDER).join(handle);
    while (holder.firstChild) { details.appendChild(holder.firstChild); }
    details.setAttribute("data-filled", "");
  }

  // ---- The service picker -------------------------------------------------------------------------------

  // Choosing another service with the pointer opens its form at once; from the keyboard, arrow keys only move
  // the choice and Enter (or the Choose button) opens it, so that looking through the list does not navigate.
  var pickerKeyed = false;

  function pickService(select) {
    if (pickerKeyed || select.value === select.getAttribute("data-current") || !select.form) { return; }
    select.form.submit();
  }

  // ---- A device authorization under way -------------------------------------------------------------------

  var DEVICE_POLL_MS = 2000;

  // Refreshes the row until the connection is no longer pending or the code has expired.
  function pollDevice(box) {
    var handle = box.getAttribute("data-handle");
    var expires = Number(box.getAttribute("data-expires-ms")) || 0;
    var state = box.querySelector("[data-device-state]");
    var timer = window.setInterval(function () {
      refreshRow(handle).then(function () {
        var row = rowOf(handle);
        var status = row ? row.getAttribute("data-status") : "pending";
        if (status !== "pending") {
          window.clearInterval(timer);
          if (state) {
            state.textContent = status === "connected"
              ? "Approved: the connection is connected."
              : "The authorization did not complete: the connection below says why.";
          }
        } else if (Date.now() > expires) {
          window.clearInterval(timer);
          if (state) { state.textContent = "The code has expired: choose Reconnect for a new one."; }
        }
      });
    }, DEVICE_POLL_MS);
  }

  // A list showing device code connections still pending: the person approves them on another device, so their
  // rows are refreshed in place until none is pending (a few at a time, for at most the longest code's life).
  var DEVICE_LIST_ROWS_PER_TICK = 10;
  var DEVICE_LIST_POLL_LIMIT_MS = 30 * 60 * 1000;

  function pendingDeviceRows() {
    return Array.prototype.slice.call(
      document.querySelectorAll('li.connection[data-status="pending"][data-grant="device_code"]'),
      0, DEVICE_LIST_ROWS_PER_TICK);
  }

  function pollDeviceRows() {
    if (pendingDeviceRows().length === 0) { return; }
    var stopAt = Date.now() + DEVICE_LIST_POLL_LIMIT_MS;
    var busy = false;
    var timer = window.setInterval(function () {
      var rows = pendingDeviceRows();
      if (rows.length === 0 || Date.now() > stopAt) { window.clearInterval(timer); return; }
      if (busy) { return; }
      busy = true;
      Promise.all(rows.map(function (row) { return refreshRow(row.getAttribute("data-handle")); }))
        .then(function () { busy = false; });
    }, DEVICE_POLL_MS);
  }

  // ---- Wiring --------------------------------------------------------------------------------------------

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) { return; }
    if (form.hasAttribute("data-confirm")) { confirmSubmit(form, event); }
    if (!event.defaultPrevented && form.hasAttribute("data-authorize")) { submitAuthorize(form, event); }
  });

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("button[data-copy-target]") : null;
    if (button) { copy(button); }
  });

  // "toggle" does not bubble: listen while it travels down.
  document.addEventListener("toggle", function (event) {
    var details = event.target;
    if (details instanceof HTMLDetailsElement && details.open && details.hasAttribute("data-usage")) {
      fillUsage(details);
    }
  }, true);

  document.addEventListener("keydown", function (event) {
    var select = event.target;
    if (!(select instanceof HTMLSelectElement) || !select.hasAttribute("data-service-picker")) { return; }
    if (event.key === "Enter") {
      pickerKeyed = false;
      event.preventDefault();
      if (select.form) { select.form.submit(); }
    } else if (event.key !== "Tab") {
      pickerKeyed = true;
    }
  });

  document.addEventListener("pointerdown", function () { pickerKeyed = false; });

  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select instanceof HTMLSelectElement && select.hasAttribute("data-service-picker")) { pickService(select); }
  });

  document.addEventListener("input", function (event) {
    var input = event.target;
    if (input instanceof HTMLInputElement && input.hasAttribute("data-handle-input")) { checkHandle(input); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[data-handle-input]").forEach(function (input) {
      // A value shown again after a refused save: say what is wrong with its form, but keep the server's
      // message (for example "already") when the form is fine.
      if (handleProblem(input.value)) { setHandleMessage(input, handleProblem(input.value)); }
    });
    var devicePage = document.querySelectorAll("[data-device-poll]");
    devicePage.forEach(pollDevice);
    if (devicePage.length === 0 && onList()) { pollDeviceRows(); }
  });
})();
