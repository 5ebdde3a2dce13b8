// latchkey's web UI in Firefox: Debian's firefox-esr driven by puppeteer-core over WebDriver BiDi (no browser is
// downloaded). A shorter suite than run.mjs, which covers every journey in Chromium: here the pages must work in a
// second engine, so it walks the main path (log in, connect through the consent popup to a connected row, the
// list's "Use it"), a preset's own form, and a device code connection, each checked by what the person sees.
//
//   LATCHKEY_BIN=target/debug/latchkey node firefox.mjs
//
// Environment as run.mjs, plus LATCHKEY_FIREFOX (default /usr/lib/firefox-esr/firefox-esr). Screenshots are
// named firefox-*.png. Exits non-zero when a journey fails.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import puppeteer from "puppeteer-core";

import { providerControl, startProvider } from "./provider.mjs";
import { ACTION_TIMEOUT_MS, BIN, SHOTS, Server, withTimeout } from "./server.mjs";

const FIREFOX = process.env.LATCHKEY_FIREFOX || "/usr/lib/firefox-esr/firefox-esr";
const SUITE_TIMEOUT_MS = 120_000;
const ADMIN = { username: "admin", password: "correct horse battery staple" };

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** The field whose <label> reads `text`, as a person finds it. */
async function byLabel(page, text) {
  const id = await page.evaluate((wanted) => {
    const label = [...document.querySelectorAll("label")].find((l) => l.textContent.trim() === wanted);
    return label ? label.htmlFor : null;
  }, text);
  check(id, `no field labelled "${text}" at ${page.url()}`);
  return page.waitForSelector(`#${id}`, { timeout: ACTION_TIMEOUT_MS });
}

async function fill(page, label, value) {
  const field = await byLabel(page, label);
  await field.evaluate((el) => {
    el.value = "";
  });
  await field.type(value);
}

/** The button (or link) whose text is `text`. */
async function clickText(page, text) {
  const handle = await page.waitForFunction(
    (wanted) => [...document.querySelectorAll("button, a, summary")].find((el) => el.textContent.trim() === wanted),
    { timeout: ACTION_TIMEOUT_MS },
    text,
  );
  await handle.asElement().click();
}

async function rowStatus(page, handle, status) {
  await page.waitForFunction(
    (h, s) => document.querySelector(`li.connection[data-handle="${h}"]`)?.getAttribute("data-status") === s,
    { timeout: ACTION_TIMEOUT_MS },
    handle,
    status,
  );
}

async function screenshot(page, name) {
  await page.screenshot({ path: join(SHOTS, `firefox-${name}.png`), fullPage: true });
}

async function logIn(page, url) {
  await page.goto(`${url}/login`);
  await fill(page, "Username", ADMIN.username);
  await fill(page, "Password", ADMIN.password);
  await Promise.all([page.waitForNavigation(), clickText(page, "Log in")]);
  await page.waitForFunction(() => document.querySelector("h1")?.textContent.includes("OAuth2 Tokens"));
}

async function connectThroughPopup({ page, server, provider, control }) {
  const c = { clientId: "ff-client", secret: "ff-secret-31d7", handle: "ff-crm", name: "Firefox CRM" };
  await control.registerClient(c.clientId, c.secret);
  await Promise.all([page.waitForNavigation(), clickText(page, "Connect to Service")]);
  await fill(page, "Client ID", c.clientId);
  await fill(page, "Client Secret", c.secret);
  await fill(page, "Authorization URL", provider.authorizationUrl);
  await fill(page, "Token URL", provider.tokenUrl);
  await fill(page, "OAuth Name", c.name);
  await fill(page, "Handle", c.handle);
  await screenshot(page, "new-connection-form");
  const popupOpened = new Promise((resolve) => page.once("popup", resolve));
  await clickText(page, "Generate and Authorize");
  const popup = await withTimeout(popupOpened, ACTION_TIMEOUT_MS, "the consent popup opening");
  const allow = await popup.waitForSelector('button[value="allow"]', { timeout: ACTION_TIMEOUT_MS });
  const closed = new Promise((resolve) => popup.once("close", resolve));
  await allow.click();
  await withTimeout(closed, ACTION_TIMEOUT_MS, "the popup closing itself after Allow");
  await page.waitForFunction((h) => location.pathname === "/connections" && document.querySelector(`li.connection[data-handle="${h}"]`), { timeout: ACTION_TIMEOUT_MS }, c.handle);
  await rowStatus(page, c.handle, "connected");

  // "Use it" fills in this row's snippets from the list's one template.
  await page.evaluate((h) => document.querySelector(`li.connection[data-handle="${h}"] details.usage summary`).click(), c.handle);
  const curl = await page.waitForSelector(`#c-${c.handle}-curl`, { timeout: ACTION_TIMEOUT_MS });
  const text = await curl.evaluate((el) => el.textContent);
  check(text.includes(`${server.url}/api/v1/connections/${c.handle}/token`), `the curl snippet reads ${text}`);
  await screenshot(page, "list-connected");
}

async function presetForm({ page, server }) {
  await page.goto(`${server.url}/connections/new`);
  const picker = await byLabel(page, "Service");
  await Promise.all([page.waitForNavigation(), picker.select("zendesk")]);
  check(page.url().endsWith("/connections/new?provider=zendesk"), `choosing Zendesk led to ${page.url()}`);
  await byLabel(page, "Zendesk subdomain");
  const urls = await page.evaluate(() =>
    [...document.querySelectorAll("label")].filter((l) => /^(Authorization|Token) URL$/.test(l.textContent.trim())).length,
  );
  check(urls === 0, "the Zendesk form asks for URLs");
  const scopes = await (await byLabel(page, "Scopes")).evaluate((el) => el.value);
  check(scopes === "read", `the scopes are ${scopes}, not the preset's default`);
  await screenshot(page, "preset-form");
}

async function deviceCode({ page, server, provider, control }) {
  const c = { clientId: "ff-tv", secret: "ff-tv-secret-52c0", handle: "ff-tv", name: "Firefox TV" };
  await control.registerClient(c.clientId, c.secret);
  await page.goto(`${server.url}/connections/new`);
  await fill(page, "Client ID", c.clientId);
  await fill(page, "Client Secret", c.secret);
  await fill(page, "Token URL", provider.tokenUrl);
  await fill(page, "OAuth Name", c.name);
  await fill(page, "Handle", c.handle);
  await clickText(page, "Advanced");
  await (await byLabel(page, "Grant type")).select("device_code");
  await fill(page, "Device authorization endpoint", provider.deviceUrl);
  await Promise.all([page.waitForNavigation(), clickText(page, "Generate and Authorize")]);
  check(page.url() === `${server.url}/connections/${c.handle}/device`, `saving led to ${page.url()}`);
  const code = await page.$eval("#user-code", (el) => el.textContent.trim());
  check(/^[0-9A-F]{4}-[0-9A-F]{4}$/.test(code), `the user code shown is ${code}`);
  await screenshot(page, "device-code");

  const other = await page.browser().newPage();
  await other.goto(`${provider.deviceUrl}?user_code=${encodeURIComponent(code)}`);
  await Promise.all([other.waitForNavigation(), clickText(other, "Approve")]);
  await other.close();
  await rowStatus(page, c.handle, "connected");
}

async function main() {
  check(existsSync(BIN), `LATCHKEY_BIN ${BIN} does not exist: build it (cargo build -p latchkey-server)`);
  check(existsSync(FIREFOX), `${FIREFOX} does not exist: install Debian's firefox-esr package`);
  mkdirSync(SHOTS, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), "latchkey-firefox-"));
  process.env.TMPDIR = dir;
  let server;
  let provider;
  let browser;
  let failed = 0;
  try {
    provider = await startProvider();
    const control = providerControl(provider.url);
    server = new Server(dir, "latchkey-serve-firefox.log");
    await server.start();
    await server.cli(["users", "create", ADMIN.username, "--admin", "--password-stdin"], `${ADMIN.password}\n`);
    browser = await puppeteer.launch({
      browser: "firefox",
      protocol: "webDriverBiDi",
      executablePath: FIREFOX,
      headless: true,
      userDataDir: join(dir, "profile"),
      timeout: 30_000,
    });
    const page = await browser.newPage();
    page.setDefaultTimeout(ACTION_TIMEOUT_MS);
    await page.setViewport({ width: 1100, height: 860 });
    await logIn(page, server.url);
    const shared = { page, server, provider, control };
    for (const [name, journey] of [
      ["connect through the consent popup to a connected row, then Use it", connectThroughPopup],
      ["a preset's form asks only what Zendesk needs", presetForm],
      ["a device code connection shows its code and turns connected", deviceCode],
    ]) {
      const begun = Date.now();
      try {
        await withTimeout(journey(shared), 45_000, `the journey "${name}"`);
        console.log(`ok   firefox: ${name} (${Date.now() - begun} ms)`);
      } catch (err) {
        failed += 1;
        console.log(`FAIL firefox: ${name}\n     ${String(err.stack || err).split("\n").join("\n     ")}`);
        await screenshot(page, "failed").catch(() => {});
      }
    }
  } catch (err) {
    failed += 1;
    console.log(`FAIL setting up the Firefox suite: ${err.stack || err}`);
  } finally {
    if (failed && server) console.log(`--- last lines of the server log ---\n${server.tail()}\n---`);
    await browser?.close().catch(() => {});
    await server?.stop().catch(() => {});
    await provider?.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
  return failed === 0;
}

const watchdog = setTimeout(() => {
  console.error(`the Firefox suite did not finish within ${SUITE_TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, SUITE_TIMEOUT_MS);
watchdog.unref();

main().then(
  (ok) => {
    process.exitCode = ok ? 0 : 1;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
