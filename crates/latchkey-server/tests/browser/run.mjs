// latchkey's web UI, end to end, in headless Chromium: the real `latchkey serve` binary, a mock OAuth provider
// on loopback whose consent page has real "Allow" and "Deny" buttons, and the journeys a person takes, each
// checked by what the person sees (labels, buttons, headings and texts, never CSS classes).
//
//   LATCHKEY_BIN=target/debug/latchkey node run.mjs
//
// Environment: LATCHKEY_BIN (the binary; default target/debug/latchkey of the workspace), LATCHKEY_SCREENSHOTS
// (where the screenshots go; default target/browser-screenshots of the workspace), LATCHKEY_CHROMIUM (default
// /usr/bin/chromium), LATCHKEY_JOURNEYS (only the journeys whose name contains this text, while working on them). Exits non-zero when any journey fails. Run by tests/browser.rs as part of `cargo test`.

import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

import { DENY_DESCRIPTION, providerControl, startProvider } from "./provider.mjs";
import { ACTION_TIMEOUT_MS, BIN, SHOTS, Server, latchkeyEnv, withTimeout } from "./server.mjs";
import { addServiceJourneys } from "./services.mjs";

const CHROMIUM = process.env.LATCHKEY_CHROMIUM || "/usr/bin/chromium";

/** Bounds on every wait. */
const JOURNEY_TIMEOUT_MS = 45_000;
const SUITE_TIMEOUT_MS = 150_000;

const ADMIN = { username: "admin", password: "correct horse battery staple" };

// ---------------------------------------------------------------------------------------------------------
// A tiny runner: journeys run one after another, each with a time bound; a summary line at the end.

const journeys = [];
function journey(name, fn) {
  journeys.push({ name, fn });
}


function check(condition, message) {
  if (!condition) throw new Error(message);
}

function fail(message) {
  throw new Error(message);
}

// ---------------------------------------------------------------------------------------------------------
// The state the journeys share: one server, one provider, one browser.

const run = {
  dir: null,
  server: null,
  provider: null,
  control: null,
  browser: null,
  adminReady: false,
  apiKey: null, // one made with the CLI, for the API checks
  secrets: [], // every client secret and API key used, to check the server log never shows one
};

async function screenshot(page, name) {
  const file = join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** What a journey gets: fresh browser contexts (cookies of their own), closed when it ends. */
class Journey {
  constructor(name) {
    this.name = name;
    this.contexts = [];
  }

  async newPage({ loggedIn = true } = {}) {
    const context = await run.browser.newContext({ viewport: { width: 1100, height: 860 } });
    context.setDefaultTimeout(ACTION_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);
    this.contexts.push(context);
    const page = await context.newPage();
    if (loggedIn) await logIn(page);
    return page;
  }

  async close() {
    await Promise.allSettled(this.contexts.map((c) => c.close()));
  }

  /** On failure: what every page still open shows (its address, its first words and a screenshot). */
  async describeOpenPages() {
    const slug = this.name.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
    const lines = [];
    let n = 0;
    for (const context of this.contexts) {
      for (const page of context.pages()) {
        n += 1;
        try {
          const text = await withTimeout(page.locator("body").innerText(), 5_000, "reading the page");
          lines.push(`page ${n} at ${page.url()} shows: ${text.replace(/\s+/g, " ").trim().slice(0, 400)}`);
          const file = await withTimeout(screenshot(page, `failed-${slug}-${n}`), 5_000, "a failure screenshot");
          lines.push(`page ${n} screenshot: ${file}`);
        } catch {
          /* the page may be gone */
        }
      }
    }
    return lines;
  }
}

// ---------------------------------------------------------------------------------------------------------
// What a person does, in words.

async function logIn(page, { username = ADMIN.username, password = ADMIN.password } = {}) {
  await page.goto(`${run.server.url}/login`);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "OAuth2 Tokens" }).waitFor();
}

function linkOrButton(scope, name) {
  return scope.getByRole("link", { name }).or(scope.getByRole("button", { name })).first();
}

/** The list's row (a list item) whose heading is the connection's name. */
function rowOf(page, name) {
  return page.getByRole("listitem").filter({ has: page.getByRole("heading", { name, exact: true }) });
}

async function waitForStatus(page, name, words) {
  const row = rowOf(page, name);
  try {
    await row.getByText(words, { exact: true }).first().waitFor();
  } catch (err) {
    const seen = (await row.count()) ? await row.first().innerText() : "(no row with that name)";
    fail(`the row of "${name}" does not show "${words}" at ${page.url()}; it shows:\n${seen}\n(${err.message.split("\n")[0]})`);
  }
  return row;
}

/** Registers an OAuth client at the mock provider, as a person does in a provider's developer console. */
async function registerClient(clientId, clientSecret, quirks = {}) {
  const { status } = await run.control.registerClient(clientId, clientSecret, quirks);
  check(status === 204, `the mock provider did not register ${clientId}`);
  run.secrets.push(clientSecret);
}

/** From the list: "Connect to Service", fill the form, "Generate and Authorize". Resolves to the popup. */
async function fillConnectionForm(page, c) {
  await linkOrButton(page, "Connect to Service").click();
  await page.getByRole("heading", { name: "Connect to Service" }).waitFor();
  await page.getByLabel("Service").selectOption({ label: "Custom OAuth 2.0" });
  await page.getByLabel("Client ID").fill(c.clientId);
  await page.getByLabel("Client Secret").fill(c.clientSecret);
  await page.getByLabel("Authorization URL").fill(run.provider.authorizationUrl);
  await page.getByLabel("Token URL").fill(run.provider.tokenUrl);
  await page.getByLabel("OAuth Name").fill(c.name);
  await page.getByLabel("Handle").fill(c.handle);
  await page.getByLabel("Scopes").fill(c.scopes || "read:data write:data");
}

async function generateAndAuthorize(page) {
  const popup = page.waitForEvent("popup");
  await page.getByRole("button", { name: "Generate and Authorize" }).click();
  const opened = await popup;
  opened.setDefaultTimeout(ACTION_TIMEOUT_MS);
  await opened.waitForURL(`${run.provider.url}/authorize**`);
  return opened;
}

/** Clicks "Allow" at the provider; the popup must then close by itself. */
async function allow(popup) {
  const closed = popup.waitForEvent("close", { timeout: ACTION_TIMEOUT_MS });
  await popup.getByRole("button", { name: "Allow" }).click();
  try {
    await closed;
  } catch {
    const seen = popup.isClosed() ? "" : await popup.locator("body").innerText().catch(() => "");
    fail(`the popup did not close by itself after "Allow"; it shows ${popup.isClosed() ? "nothing" : popup.url()}:\n${seen}`);
  }
}

/** The whole connect journey: form, popup, Allow, popup closes, the row is connected. */
async function connect(page, c) {
  await registerClient(c.clientId, c.clientSecret);
  await fillConnectionForm(page, c);
  const popup = await generateAndAuthorize(page);
  await allow(popup);
  return waitForStatus(page, c.name, "Connected");
}

/**
 * Runs in the page. The texts that describe a field, line by line: its wrapper's text (up to the element that holds
 * its label) and its aria-describedby elements, less the lines in `baseline`. Without `source`, returns those lines;
 * with it, whether they match the pattern (or, with `absent`, do not).
 */
function fieldMessageInPage({ el, baseline, source, flags, absent }) {
  const lines = [];
  const add = (text) => {
    for (const line of (text || "").split("\n")) if (line.trim()) lines.push(line.trim());
  };
  let wrapper = el.parentElement;
  while (wrapper && wrapper !== document.body && !(el.id && wrapper.querySelector(`label[for="${CSS.escape(el.id)}"]`))) {
    wrapper = wrapper.parentElement;
  }
  if (wrapper && wrapper !== document.body) add(wrapper.innerText);
  for (const id of (el.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean)) {
    const described = document.getElementById(id);
    if (described) add(described.innerText || described.textContent);
  }
  const fresh = [...new Set(lines)].filter((line) => !baseline.includes(line));
  if (!source) return fresh;
  return new RegExp(source, flags).test(fresh.join(" / ")) !== absent;
}

async function fieldTexts(page, input, baseline = []) {
  return page.evaluate(fieldMessageInPage, { el: await input.elementHandle(), baseline });
}

/**
 * Types `value` into the field key by key, then waits (bounded) until the field's new message, the lines that are
 * not in `baseline`, matches `pattern` (or, with `absent`, no longer matches it).
 */
async function typeAndExpectMessage(page, input, value, baseline, { pattern, absent = false, description }) {
  await input.fill("");
  await input.pressSequentially(value);
  const arg = { el: await input.elementHandle(), baseline, source: pattern.source, flags: pattern.flags, absent };
  try {
    await page.waitForFunction(fieldMessageInPage, arg, { timeout: 5_000 });
  } catch {
    const message = (await fieldTexts(page, input, baseline)).join(" / ");
    fail(`typing "${value}" into Handle: expected ${description}; the field says: ${JSON.stringify(message)}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The journeys.

journey("first-run set-up from the printed link lands on the empty list", async (t) => {
  const page = await t.newPage({ loggedIn: false });
  const response = await page.goto(run.server.setupLink);
  check(response.ok(), `the set-up link answered ${response.status()}`);
  await screenshot(page, "01-setup");
  await page.getByLabel("Username").fill(ADMIN.username);
  await page.getByLabel("Password").fill(ADMIN.password);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("heading", { name: "OAuth2 Tokens" }).waitFor();
  run.adminReady = true;
  check(page.url().startsWith(run.server.url), `set-up ended at ${page.url()}`);
  await screenshot(page, "02-list-empty");

  const other = await t.newPage({ loggedIn: false });
  const again = await other.goto(run.server.setupLink);
  check(again.status() >= 400, `a used set-up link answered ${again.status()}, not an error`);
  check((await other.getByRole("button", { name: "Create account" }).count()) === 0, "a used set-up link shows the form again");
});

journey("log in with the form, and log out", async (t) => {
  const page = await t.newPage({ loggedIn: false });
  await page.goto(run.server.url);
  await page.getByRole("button", { name: "Log in" }).waitFor();
  check(page.url().includes("/login"), `the home page of a stranger is ${page.url()}, not the log-in page`);
  await screenshot(page, "03-login");

  await page.getByLabel("Username").fill(ADMIN.username);
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("alert").first().waitFor();
  check((await page.getByRole("heading", { name: "OAuth2 Tokens" }).count()) === 0, "a wrong password logged in");

  await logIn(page);
  await linkOrButton(page, "Log out").click();
  await page.getByRole("button", { name: "Log in" }).waitFor();
  await page.goto(`${run.server.url}/connections`);
  await page.getByRole("button", { name: "Log in" }).waitFor();
  check((await page.getByRole("heading", { name: "OAuth2 Tokens" }).count()) === 0, "the list is still shown after logging out");
});

const MAIN = { name: "Main CRM", handle: "main-crm", clientId: "main-client", clientSecret: "main-secret-8f2a" };

journey("connect a service: form, consent popup, Allow, the row turns Connected without a reload; foreign messages are ignored", async (t) => {
  const page = await t.newPage();
  await registerClient(MAIN.clientId, MAIN.clientSecret);
  await fillConnectionForm(page, MAIN);
  const redirect = await page.getByLabel("OAuth Redirect URL").inputValue();
  check(redirect === `${run.server.url}/oauth2/callback`, `OAuth Redirect URL shows ${redirect}`);
  await screenshot(page, "04-new-connection-form");

  const popup = await generateAndAuthorize(page);
  await popup.getByRole("button", { name: "Allow" }).waitFor();
  await screenshot(popup, "05-provider-consent");
  await allow(popup);
  await waitForStatus(page, MAIN.name, "Connected");
  const row = rowOf(page, MAIN.name);
  check((await row.innerText()).includes(MAIN.handle), "the row does not show the handle");

  const last = await run.control.lastTokenRequest(MAIN.clientId);
  check(last && last.grant_type === "authorization_code", "the provider saw no code exchange");

  // The list heeds an authorization message from its own origin only.
  await page.goto(`${run.server.url}/connections`);
  await rowOf(page, MAIN.name).waitFor();
  const isRow = (url) => new URL(url).pathname === `/connections/${MAIN.handle}/row`;
  const rowRequests = [];
  page.on("request", (request) => {
    if (isRow(request.url())) rowRequests.push(request.url());
  });
  const message = { type: "latchkey:authorization", ok: true, handle: MAIN.handle };
  // A window of another origin (the provider's), opened by the list, posts the very message the callback would.
  await page.evaluate(() => {
    window.seenOrigins = [];
    window.addEventListener("message", (event) => window.seenOrigins.push(event.origin));
  });
  const popupEvent = page.waitForEvent("popup");
  await page.evaluate((url) => void window.open(url, "elsewhere"), `${run.provider.url}/`);
  const other = await popupEvent;
  await other.waitForLoadState();
  await other.evaluate((m) => window.opener.postMessage(m, "*"), message);
  // app.js saw it first (its listener came first); by now it would have asked for the row.
  await page.waitForFunction((origin) => window.seenOrigins.includes(origin), run.provider.url);
  await other.close();
  // Then the list's own origin: only this one makes it fetch the row again.
  const fetched = page.waitForResponse((response) => isRow(response.url()));
  await page.evaluate((m) => window.postMessage(m, window.location.origin), message);
  await fetched;
  check(rowRequests.length === 1, `the row was fetched ${rowRequests.length} times: a foreign message was heeded`);
});

journey("handle validation messages while typing", async (t) => {
  const page = await t.newPage();
  await linkOrButton(page, "Connect to Service").click();
  const handle = page.getByLabel("Handle");
  await handle.fill("a-fresh-handle");
  const baseline = await fieldTexts(page, handle);

  await typeAndExpectMessage(page, handle, "Bad Handle", baseline, {
    pattern: /uppercase|space/i,
    description: "a message about uppercase letters or spaces",
  });
  await typeAndExpectMessage(page, handle, "bad handle", baseline, { pattern: /space/i, description: "a message about spaces" });
  const invalid = await handle.evaluate((el) => !el.checkValidity());
  check(invalid, "the browser still treats a handle with a space as valid");
  await typeAndExpectMessage(page, handle, MAIN.handle, baseline, {
    pattern: /already/i,
    description: `a message containing "already" for the taken handle "${MAIN.handle}"`,
  });
  await typeAndExpectMessage(page, handle, "another-fresh-handle", baseline, {
    pattern: /already|uppercase|space|not allowed/i,
    absent: true,
    description: "the message to go away for a free, well-formed handle",
  });
});

journey("a provider error (Deny) is shown in the popup and then in the list", async (t) => {
  const page = await t.newPage();
  const c = { name: "Denied Service", handle: "denied-svc", clientId: "deny-client", clientSecret: "deny-secret-77b1" };
  await registerClient(c.clientId, c.clientSecret);
  await fillConnectionForm(page, c);
  const popup = await generateAndAuthorize(page);
  await popup.getByRole("button", { name: "Deny" }).click();
  await popup.waitForURL(`${run.server.url}/oauth2/callback**`);
  await popup.getByText(DENY_DESCRIPTION).first().waitFor();
  check(!popup.isClosed(), "the popup closed on a failure instead of showing it");
  await screenshot(popup, "07-callback-failure");

  // The opener learns of the failure and shows the list: still "Pending authorization" (a failed authorization
  // brings nothing to life), with the provider's words.
  const row = await waitForStatus(page, c.name, "Pending authorization");
  await row.getByText(DENY_DESCRIPTION).first().waitFor();
  await popup.close();
});

journey("edit: the secret placeholder keeps the stored secret, typing replaces it", async (t) => {
  const page = await t.newPage();
  const c = { name: "Edit Me", handle: "edit-me", clientId: "edit-client", clientSecret: "first-secret-a91c" };
  await connect(page, c);
  const first = await run.control.lastTokenRequest(c.clientId);
  check(first.client_secret === c.clientSecret, "the first exchange did not carry the first secret");

  const openEditForm = async () => {
    await linkOrButton(rowOf(page, c.name), /^Edit\b/).click();
    await page.getByRole("button", { name: "Generate and Authorize" }).waitFor();
  };
  await openEditForm();
  const value = async (label) => page.getByLabel(label, { exact: true }).inputValue();
  check((await value("Authorization URL")) === run.provider.authorizationUrl, "Authorization URL is not pre-filled");
  check((await value("Token URL")) === run.provider.tokenUrl, "Token URL is not pre-filled");
  check((await value("Client ID")) === c.clientId, "Client ID is not pre-filled");
  check((await value("Client Secret")) === "", "the Client Secret field holds a value: the secret reached the page");
  const placeholder = await page.getByLabel("Client Secret", { exact: true }).getAttribute("placeholder");
  check(placeholder && placeholder.trim() !== "", "the Client Secret field has no placeholder saying a secret is stored");
  check(!(await page.content()).includes(c.clientSecret), "the edit page's HTML contains the client secret");
  const handle = page.getByLabel("Handle", { exact: true });
  check((await handle.inputValue()) === c.handle, "Handle is not shown on the edit form");
  check(!(await handle.isEditable()), "Handle can be changed on the edit form");
  await screenshot(page, "08-edit-form");

  // Left alone, the placeholder keeps the stored secret: the provider sees the old one in the next exchange.
  let popup = await generateAndAuthorize(page);
  await allow(popup);
  await waitForStatus(page, c.name, "Connected");
  const kept = await run.control.lastTokenRequest(c.clientId);
  check(kept.seq > first.seq && kept.grant_type === "authorization_code", "saving the edit form led to no new exchange");
  check(kept.client_secret === c.clientSecret, "leaving the secret alone did not keep the stored secret");

  // The provider's console issues a new secret; typed over the placeholder, it replaces the stored one.
  const newSecret = "second-secret-5d0e";
  await registerClient(c.clientId, newSecret);
  await openEditForm();
  await page.getByLabel("Client Secret", { exact: true }).fill(newSecret);
  popup = await generateAndAuthorize(page);
  await allow(popup);
  await waitForStatus(page, c.name, "Connected");
  const replaced = await run.control.lastTokenRequest(c.clientId);
  check(replaced.seq > kept.seq, "saving the new secret led to no new exchange");
  check(replaced.client_secret === newSecret, "the provider did not see the new secret");
});

async function cliApiKey() {
  if (!run.apiKey) {
    run.apiKey = await run.server.cli(["api-keys", "create", ADMIN.username, "--name", "browser-suite"]);
    check(/^\S+$/.test(run.apiKey), `api-keys create printed ${JSON.stringify(run.apiKey)}, not a key alone`);
    run.secrets.push(run.apiKey);
  }
  return run.apiKey;
}

journey("reconnect after the provider revoked the refresh token (needs re-authorization)", async (t) => {
  const page = await t.newPage();
  const c = { name: "Reauth Service", handle: "reauth-svc", clientId: "reauth-client", clientSecret: "reauth-secret-3c4d" };
  await connect(page, c);
  const key = await cliApiKey();
  const before = await run.server.token(c.handle, key);
  check(before.status === 200 && before.body?.token, `the token API answered ${before.status} ${JSON.stringify(before.body)}`);

  await run.control.revokeRefreshTokens(c.clientId);
  const refused = await run.server.token(c.handle, key, { force: true });
  check(refused.status === 409, `a forced refresh with a revoked refresh token answered ${refused.status}, not 409`);

  await page.reload();
  await waitForStatus(page, c.name, "Needs re-authorization");
  const top = async () => (await rowOf(page, c.name).boundingBox())?.y;
  const beforeY = await top();
  const popupEvent = page.waitForEvent("popup");
  await rowOf(page, c.name).getByRole("button", { name: /^Reconnect\b/ }).click();
  const popup = await popupEvent;
  await popup.waitForURL(`${run.provider.url}/authorize**`);
  await allow(popup);
  await waitForStatus(page, c.name, "Connected");
  // The row was replaced where it stood: nothing above it moved, and the list did not scroll.
  const afterY = await top();
  check(beforeY !== undefined && beforeY === afterY, `the row moved from y=${beforeY} to y=${afterY} when it updated`);

  const after = await run.server.token(c.handle, key);
  check(after.status === 200 && after.body?.token && after.body.token !== before.body.token, "no new token after reconnecting");
  await expectTokenWorks(after.body.token);
});

async function expectTokenWorks(token) {
  const response = await fetch(run.provider.resourceUrl, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(ACTION_TIMEOUT_MS),
  });
  check(response.status === 200, `the provider's API refused the token latchkey handed out (${response.status})`);
}

/** Runs a JavaScript snippet from the page in a Node child process; resolves to its `{ token, error }`. */
async function runSnippet(snippet, key) {
  const dir = mkdtempSync(join(run.dir, "snippet-"));
  const file = join(dir, "snippet.mjs");
  writeFileSync(file, `${snippet}\nconsole.log(JSON.stringify({ token, error }));\n`);
  return new Promise((resolveRun, rejectRun) => {
    execFile(
      process.execPath,
      [file],
      { cwd: dir, env: { ...latchkeyEnv(), LATCHKEY_URL: run.server.url, LATCHKEY_API_KEY: key }, timeout: 15_000 },
      (err, stdout, stderr) => {
        if (err) {
          rejectRun(new Error(`the JavaScript snippet failed to run: ${err.message}\n${stderr}\n--- snippet ---\n${snippet}`));
          return;
        }
        const last = stdout.trim().split("\n").pop();
        try {
          resolveRun(JSON.parse(last));
        } catch {
          rejectRun(new Error(`the JavaScript snippet printed ${JSON.stringify(stdout)}`));
        }
      },
    );
  });
}

journey("API keys page: create a key, then use it with the connection's snippets", async (t) => {
  const page = await t.newPage();
  await linkOrButton(page, "API Keys").click();
  await page.getByRole("button", { name: "Create API Key" }).waitFor();
  const name = "snippet key";
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByRole("button", { name: "Create API Key" }).click();
  const region = page.getByRole("region", { name: "New API key" });
  await region.waitFor();
  const shown = [await region.innerText(), ...(await region.locator("input, textarea").evaluateAll((els) => els.map((e) => e.value)))].join("\n");
  const key = shown.match(/lk_[A-Za-z0-9_-]+/)?.[0];
  check(key, `no key (lk_...) in the region "New API key":\n${shown}`);
  run.secrets.push(key);
  await page.getByText(name, { exact: true }).first().waitFor();
  await screenshot(page, "09-api-keys");

  await page.goto(`${run.server.url}/connections`);
  const row = rowOf(page, MAIN.name);
  await row.waitFor();
  // The snippets fold away under "Use it", filled in for this row when it opens; the JavaScript function is
  // shown once, below the list.
  await row.getByText("Use it", { exact: true }).click();
  await row.locator("pre").filter({ hasText: /\bcurl\b/ }).first().waitFor();

  // The curl snippet's URL, with the key as its header says.
  const curl = row.locator("pre").filter({ hasText: /\bcurl\b/ }).first();
  check(await curl.count(), `the row of "${MAIN.name}" shows no curl snippet`);
  const curlText = await curl.innerText();
  const url = curlText.match(/https?:\/\/[^\s'"]+/)?.[0];
  check(url && url.includes(`/api/v1/connections/${MAIN.handle}/token`), `the curl snippet has no token URL:\n${curlText}`);
  const viaCurl = await fetch(url, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(ACTION_TIMEOUT_MS) });
  const curlBody = await viaCurl.json().catch(() => ({}));
  check(viaCurl.status === 200 && curlBody.token, `the curl snippet's URL answered ${viaCurl.status} ${JSON.stringify(curlBody)}`);
  await expectTokenWorks(curlBody.token);

  // The JavaScript snippet, run as a script would run it, with LATCHKEY_API_KEY set.
  const js = row.locator("pre").filter({ hasText: "getOAuthToken" }).first();
  check(await js.count(), `the row of "${MAIN.name}" shows no JavaScript snippet calling getOAuthToken`);
  const call = await js.innerText();
  check(call.includes(`getOAuthToken('${MAIN.handle}')`) || call.includes(`getOAuthToken("${MAIN.handle}")`), `the snippet does not ask for '${MAIN.handle}':\n${call}`);
  await page.getByText("Use a connection from a script", { exact: false }).click();
  const fn = await page.locator("#js-function").innerText();
  check(fn.startsWith("async function getOAuthToken"), `the shared function reads:\n${fn}`);
  const snippet = `${fn}\n\n${call}`;
  const result = await runSnippet(snippet, key);
  check(result.token && !result.error, `the snippet answered ${JSON.stringify(result)}`);
  await expectTokenWorks(result.token);
});

journey("an OAuth Name of <img src=x onerror=alert(1)> is shown as text", async (t) => {
  const page = await t.newPage();
  const dialogs = [];
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.message());
    dialog.dismiss().catch(() => {});
  });
  const c = { name: "<img src=x onerror=alert(1)>", handle: "xss-name", clientId: "xss-client", clientSecret: "xss-secret-0a0b" };
  await connect(page, c);
  const row = rowOf(page, c.name);
  await row.getByRole("heading", { name: c.name, exact: true }).waitFor();
  check((await row.locator("img").count()) === 0, "the name became an img element in the row");
  check((await page.locator('img[src="x"]').count()) === 0, "the name became an img element on the page");
  await page.getByText(c.name, { exact: true }).first().waitFor();

  await linkOrButton(row, /^Edit\b/).click();
  await page.getByRole("button", { name: "Generate and Authorize" }).waitFor();
  check((await page.getByLabel("OAuth Name").inputValue()) === c.name, "the edit form does not show the name as typed");
  check((await page.locator('img[src="x"]').count()) === 0, "the name became an img element on the edit form");
  check(dialogs.length === 0, `a dialog fired: ${dialogs.join(", ")}`);
});

journey("popup blocked: the flow continues in the same tab and returns to the list", async (t) => {
  const page = await t.newPage();
  await page.addInitScript(() => {
    window.open = () => null;
  });
  const popups = [];
  page.on("popup", (p) => popups.push(p));
  const c = { name: "Same Tab", handle: "same-tab", clientId: "same-tab-client", clientSecret: "same-tab-secret-9e8f" };
  await registerClient(c.clientId, c.clientSecret);
  await fillConnectionForm(page, c);

  // Hold the callback page's script back until its screenshot is taken: on success it leaves the page soon.
  let release;
  const gate = new Promise((r) => (release = r));
  await page.route(
    (url) => url.pathname.endsWith("/callback.js"),
    async (route) => {
      const response = await route.fetch();
      await gate;
      await route.fulfill({ response });
    },
  );
  await page.getByRole("button", { name: "Generate and Authorize" }).click();
  await page.waitForURL(`${run.provider.url}/authorize**`);
  await page.getByRole("button", { name: "Allow" }).click();
  await page.waitForURL(`${run.server.url}/oauth2/callback**`, { waitUntil: "commit" });
  await page.getByRole("heading").first().waitFor();
  const said = await page.locator("body").innerText();
  check(said.includes(`'${c.name}' is connected`), `the success page says:\n${said}`);
  check(!/close this window/i.test(said), `the same-tab success page asks to close the window:\n${said}`);
  await page.getByRole("link", { name: "Back to your connections" }).waitFor();
  await screenshot(page, "10-callback-success");
  release();
  await page.waitForURL(`${run.server.url}/connections`, { timeout: 15_000 });
  await waitForStatus(page, c.name, "Connected");
  check(popups.length === 0, "a popup opened although window.open was blocked");
});

/** Presses Tab until the focused control is the one whose label (or, for a link or button, text) starts with
 * `name`; fails, listing what it passed, after `max` presses. */
async function tabTo(page, name, max = 60) {
  const passed = [];
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return "";
      const text = el.labels && el.labels.length ? el.labels[0].textContent : el.textContent;
      return (text || "").replace(/\s+/g, " ").trim();
    });
    if (focused.startsWith(name)) return;
    passed.push(focused);
  }
  fail(`Tab never reached "${name}"; it passed: ${passed.join(" | ")}`);
}

/** How far the page is wider than its window (0 when nothing sticks out sideways). */
async function sidewaysOverflow(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

journey("keyboard only: log in and connect a service with Tab, typing and Enter; pages fit a phone", async (t) => {
  const page = await t.newPage({ loggedIn: false });
  await page.goto(`${run.server.url}/login`);
  await tabTo(page, "Username");
  await page.keyboard.type(ADMIN.username);
  await tabTo(page, "Password", 3);
  await page.keyboard.type(ADMIN.password);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "OAuth2 Tokens" }).waitFor();

  const c = { name: "Keyboard CRM", handle: "keyboard-crm", clientId: "keyboard-client", clientSecret: "keyboard-secret-5b1c" };
  await registerClient(c.clientId, c.clientSecret);
  await tabTo(page, "Connect to Service");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Connect to Service" }).waitFor();
  await tabTo(page, "Service");
  await page.keyboard.press("Home");
  await page.keyboard.press("Enter");
  await page.getByLabel("Client ID").waitFor();
  const fields = [
    ["Client ID", c.clientId],
    ["Client Secret", c.clientSecret],
    ["Authorization URL", run.provider.authorizationUrl],
    ["Token URL", run.provider.tokenUrl],
    ["OAuth Name", c.name],
    ["Handle", c.handle],
    ["Scopes", "read:data"],
  ];
  for (const [label, value] of fields) {
    await tabTo(page, label);
    await page.keyboard.type(value);
  }
  await tabTo(page, "Generate and Authorize");
  const popupEvent = page.waitForEvent("popup");
  await page.keyboard.press("Enter");
  const popup = await popupEvent;
  popup.setDefaultTimeout(ACTION_TIMEOUT_MS);
  await popup.waitForURL(`${run.provider.url}/authorize**`);
  await allow(popup);
  await waitForStatus(page, c.name, "Connected");

  // A phone-width window: the list, the form and the API keys page fit without scrolling sideways.
  await page.setViewportSize({ width: 360, height: 740 });
  for (const path of ["/connections", "/connections/new", `/connections/${c.handle}/edit`, "/api-keys"]) {
    await page.goto(`${run.server.url}${path}`);
    const overflow = await sidewaysOverflow(page);
    check(overflow <= 0, `${path} is ${overflow}px wider than a 360px window`);
  }
});

journey("delete: the confirmation names the handle, the row goes away", async (t) => {
  const page = await t.newPage();
  const c = { name: "Delete Me", handle: "delete-me", clientId: "delete-client", clientSecret: "delete-secret-1f2e" };
  await connect(page, c);
  await screenshot(page, "06-list-with-connections");
  await page.setViewportSize({ width: 390, height: 844 });
  await screenshot(page, "11-list-phone-width");
  await page.setViewportSize({ width: 1100, height: 860 });

  let question = null;
  page.once("dialog", (dialog) => {
    question = dialog.message();
    dialog.accept().catch(() => {});
  });
  await rowOf(page, c.name).getByRole("button", { name: /^Delete\b/ }).click();
  await rowOf(page, c.name).waitFor({ state: "detached" });
  check(question !== null, "deleting asked no question");
  check(question.includes(c.handle), `the confirmation does not name the handle: ${JSON.stringify(question)}`);
  await rowOf(page, MAIN.name).waitFor();

  const key = await cliApiKey();
  const gone = await run.server.token(c.handle, key);
  check(gone.status === 404, `the deleted connection's token answered ${gone.status}, not 404`);
});

addServiceJourneys({
  journey,
  run,
  h: { check, fail, screenshot, linkOrButton, rowOf, waitForStatus, registerClient, generateAndAuthorize, allow },
});

journey("the server log never shows a client secret or an API key", async () => {
  const log = run.server.logLines.join("\n");
  for (const secret of run.secrets) {
    check(!log.includes(secret), `the server log contains a secret starting ${secret.slice(0, 6)}`);
  }
});

// ---------------------------------------------------------------------------------------------------------
// Set-up, the journeys, tear-down.

async function main() {
  check(existsSync(BIN), `LATCHKEY_BIN ${BIN} does not exist: build it (cargo build -p latchkey-server) or set LATCHKEY_BIN`);
  check(existsSync(CHROMIUM), `${CHROMIUM} does not exist: install Debian's chromium package`);
  mkdirSync(SHOTS, { recursive: true });
  run.dir = mkdtempSync(join(tmpdir(), "latchkey-browser-"));
  // Playwright gives every launch a fresh temporary --user-data-dir of its own (it refuses the flag in `args`);
  // TMPDIR puts that profile inside this run's folder, removed at the end.
  process.env.TMPDIR = run.dir;
  console.log(`screenshots and the server log go to ${SHOTS}`);

  const started = Date.now();
  let passed = 0;
  let failed = 0;
  try {
    run.provider = await startProvider();
    run.control = providerControl(run.provider.url);
    run.server = new Server(run.dir);
    await run.server.start();
    console.log(`latchkey at ${run.server.url}, mock provider at ${run.provider.url}`);
    run.browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
      timeout: 30_000,
    });

    const only = process.env.LATCHKEY_JOURNEYS;
    for (const { name, fn } of journeys.filter((j) => !only || j.name.includes(only))) {
      if (!run.adminReady && !name.startsWith("first-run")) {
        // Set-up failed: make the administrator another way, so the other journeys still say what they can.
        await run.server
          .cli(["users", "create", ADMIN.username, "--admin", "--password-stdin"], `${ADMIN.password}\n`)
          .then(() => (run.adminReady = true))
          .catch((err) => console.error(`could not create the administrator with the CLI: ${err.message}`));
      }
      const t = new Journey(name);
      const begun = Date.now();
      try {
        await withTimeout(fn(t), JOURNEY_TIMEOUT_MS, `the journey "${name}"`);
        passed += 1;
        console.log(`ok   ${name} (${Date.now() - begun} ms)`);
      } catch (err) {
        failed += 1;
        console.log(`FAIL ${name} (${Date.now() - begun} ms)`);
        // Playwright colours its call logs; the plain text reads better in a test log.
        const text = String(err.stack || err).replace(/\x1b\[[0-9;]*m/g, "");
        console.log(`     ${text.split("\n").join("\n     ")}`);
        for (const line of await t.describeOpenPages()) console.log(`     ${line}`);
      } finally {
        await withTimeout(t.close(), 10_000, "closing the journey's browser contexts").catch(() => {});
      }
    }
  } catch (err) {
    failed += 1;
    console.log(`FAIL setting up the suite: ${err.stack || err}`);
  } finally {
    if (failed && run.server) console.log(`--- last lines of the server log ---\n${run.server.tail()}\n---`);
    if (failed && run.control) console.log(`mock provider token requests: ${JSON.stringify(await run.control.log().catch(() => "?"))}`);
    await run.browser?.close().catch(() => {});
    await run.server?.stop().catch((err) => console.error(`stopping latchkey: ${err.message}`));
    await run.provider?.close().catch(() => {});
    rmSync(run.dir, { recursive: true, force: true });
  }
  console.log(`screenshots: ${SHOTS}`);
  console.log(`browser journeys finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && (passed === journeys.length || Boolean(process.env.LATCHKEY_JOURNEYS));
}

const watchdog = setTimeout(() => {
  console.error(`the browser suite did not finish within ${SUITE_TIMEOUT_MS / 1000} s`);
  if (run.server?.child && run.server.child.exitCode === null) run.server.child.kill("SIGKILL");
  process.exit(1);
}, SUITE_TIMEOUT_MS);
watchdog.unref();

process.on("exit", () => {
  // Never leave the server behind, whatever happened.
  if (run.server?.child && run.server.child.exitCode === null && run.server.child.signalCode === null) run.server.child.kill("SIGKILL");
});

main().then(
  (ok) => {
    process.exitCode = ok ? 0 : 1;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
