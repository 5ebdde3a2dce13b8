// Journeys beyond Custom OAuth 2.0: the preset picker, the Advanced section against a quirky provider, a client
// credentials connection and a device code connection. Registered by run.mjs, which passes its runner and the
// helpers that say what a person does.

/** Hosts a browser context of these journeys may reach; every other request is aborted and recorded. */
const LOOPBACK = new Set(["127.0.0.1", "[::1]", "::1", "localhost"]);

/**
 * Keeps `page`'s whole context on loopback: a preset's URLs name real providers on the internet. A request to any
 * other host never leaves the browser: a page navigation gets a local stand-in page (so the window stays usable),
 * anything else is aborted. Resolves to the list of those addresses and `attempted(prefix, ms)`, which waits
 * (bounded) for such a request to start so.
 */
async function loopbackOnly(page) {
  const blocked = [];
  const waiters = [];
  await page.context().route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === "about:" || url.protocol === "data:" || LOOPBACK.has(url.hostname)) return route.continue();
    blocked.push(url.href);
    for (const w of waiters) if (url.href.startsWith(w.prefix)) w.resolve(url.href);
    if (route.request().isNavigationRequest()) {
      return route.fulfill({ status: 200, contentType: "text/html", body: "<!doctype html><title>Not followed</title><p>Not followed in this test.</p>" });
    }
    return route.abort("blockedbyclient");
  });
  const attempted = (prefix, ms) => {
    const seen = blocked.find((u) => u.startsWith(prefix));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), ms);
      waiters.push({ prefix, resolve: (u) => { clearTimeout(timer); resolve(u); } });
    });
  };
  return { blocked, attempted };
}

export function addServiceJourneys({ journey, run, h }) {
  const { check, fail, screenshot, linkOrButton, rowOf, waitForStatus, registerClient, generateAndAuthorize, allow } = h;

  /** From the list to the empty form of Custom OAuth 2.0. */
  async function openForm(page) {
    await linkOrButton(page, "Connect to Service").click();
    await page.getByRole("heading", { name: "Connect to Service" }).waitFor();
  }

  /** The Custom OAuth 2.0 fields, filled; `tokenOnly` leaves the Authorization URL empty. */
  async function fillCustom(page, c, { tokenOnly = false } = {}) {
    await openForm(page);
    await page.getByLabel("Client ID").fill(c.clientId);
    await page.getByLabel("Client Secret").fill(c.clientSecret);
    if (!tokenOnly) await page.getByLabel("Authorization URL").fill(run.provider.authorizationUrl);
    await page.getByLabel("Token URL").fill(run.provider.tokenUrl);
    await page.getByLabel("OAuth Name").fill(c.name);
    await page.getByLabel("Handle").fill(c.handle);
    await page.getByLabel("Scopes").fill("read:data");
  }

  async function openAdvanced(page) {
    const summary = page.getByText("Advanced", { exact: true });
    if (!(await page.locator("details.advanced").evaluate((d) => d.open))) await summary.click();
    await page.getByLabel("Grant type").waitFor();
  }

  journey("preset picker: choose Zendesk, only its fields are asked, saved; nothing leaves loopback", async (t) => {
    const page = await t.newPage();
    const { blocked, attempted } = await loopbackOnly(page);
    await openForm(page);
    const picker = page.getByLabel("Service");
    const options = await picker.locator("option").allInnerTexts();
    check(options[0] === "Custom OAuth 2.0", `the first service is ${options[0]}`);
    check(options.includes("Zendesk") && options.includes("GitHub") && options.length > 25, `services: ${options.join(", ")}`);

    // From the keyboard, arrows only move the choice; Enter opens the chosen service's form.
    const before = page.url();
    await picker.focus();
    await page.keyboard.press("ArrowDown");
    check(page.url() === before, `an arrow key navigated to ${page.url()}`);
    await page.keyboard.press("Enter");
    await page.waitForURL(/\/connections\/new\?provider=/);
    check(!(await page.getByLabel("Authorization URL").count()), "a preset's form asks for the Authorization URL");

    // With the pointer (or a script), choosing opens the form at once.
    await page.getByLabel("Service").selectOption({ label: "Zendesk" });
    await page.waitForURL(/provider=zendesk/);
    await page.getByLabel("Zendesk subdomain").waitFor();
    check(!(await page.getByLabel("Authorization URL").count()) && !(await page.getByLabel("Token URL").count()), "the Zendesk form asks for URLs");
    check(!(await page.getByText("Advanced", { exact: true }).count()), "the Zendesk form shows the Advanced section");
    check((await page.getByLabel("Scopes").inputValue()) === "read", "the scopes are not the preset's default");
    check((await page.getByLabel("OAuth Redirect URL").inputValue()) === `${run.server.url}/oauth2/callback`, "no redirect URL to copy");
    await screenshot(page, "12-preset-form");
    await page.setViewportSize({ width: 390, height: 844 });
    await screenshot(page, "12-preset-form-phone-width");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    check(overflow <= 0, `the preset form is ${overflow} px wider than a phone's screen`);
    await page.setViewportSize({ width: 1100, height: 860 });

    const c = { name: "Support Desk", handle: "support-desk" };
    await page.getByLabel("Client ID").fill("zendesk-client");
    await page.getByLabel("Client Secret").fill("zendesk-secret-40aa");
    run.secrets.push("zendesk-secret-40aa");
    await page.getByLabel("Zendesk subdomain").fill("acme");
    await page.getByLabel("OAuth Name").fill(c.name);
    await page.getByLabel("Handle").fill(c.handle);
    const popupEvent = page.waitForEvent("popup");
    await page.getByRole("button", { name: "Generate and Authorize" }).click();
    const popup = await popupEvent;
    // The popup goes through latchkey's start link to Zendesk, which the route aborts: assert on that address.
    const toZendesk = await attempted("https://acme.zendesk.com/oauth/authorizations/new?", 10_000);
    if (!toZendesk) fail(`the authorization never headed for acme.zendesk.com; blocked: ${blocked.join(", ") || "nothing"}`);
    const query = new URL(toZendesk).searchParams;
    check(query.get("client_id") === "zendesk-client" && query.get("scope") === "read", `the authorization request: ${toZendesk}`);
    check(query.get("redirect_uri") === `${run.server.url}/oauth2/callback`, `redirect_uri: ${query.get("redirect_uri")}`);
    await popup.close();
    const row = await waitForStatus(page, c.name, "Pending authorization");
    check((await row.innerText()).includes("Zendesk"), "the row does not name the provider Zendesk");
    check(blocked.every((u) => new URL(u).hostname.endsWith("zendesk.com")), `unexpected requests off loopback: ${blocked.join(", ")}`);
  });

  journey("Advanced: PKCE off and a JSON body for a quirky provider, an error next to its field, then Connected", async (t) => {
    const page = await t.newPage();
    const c = { name: "Quirky API", handle: "quirky-api", clientId: "quirky-client", clientSecret: "quirky-secret-6b1d" };
    await registerClient(c.clientId, c.clientSecret, { pkce: "reject", json: true });
    await fillCustom(page, c);
    await openAdvanced(page);
    await page.getByLabel("PKCE").selectOption("off");
    await page.getByLabel("Token request body").selectOption("json");

    // A line without "=" is refused next to its field.
    const extra = page.getByLabel("Extra token request parameters");
    await extra.fill("audience");
    await page.getByRole("button", { name: "Generate and Authorize" }).click();
    const error = page.locator('[data-error-for="token_params"]');
    await error.filter({ hasText: /has no '='/ }).waitFor();
    check((await extra.getAttribute("aria-invalid")) === "true", "the field at fault is not marked invalid");
    await extra.fill("");
    await screenshot(page, "13-advanced-section");

    const popup = await generateAndAuthorize(page);
    await allow(popup);
    await waitForStatus(page, c.name, "Connected");
    const last = await run.control.lastTokenRequest(c.clientId);
    check(last && last.grant_type === "authorization_code", "the quirky provider saw no code exchange");
  });

  journey("client credentials: saving fetches the token, no consent window, the row is Connected", async (t) => {
    const page = await t.newPage();
    const popups = [];
    page.on("popup", (p) => popups.push(p));
    const c = { name: "Machine Account", handle: "machine", clientId: "machine-client", clientSecret: "machine-secret-2c7e" };
    await registerClient(c.clientId, c.clientSecret);
    await fillCustom(page, c, { tokenOnly: true });
    await openAdvanced(page);
    await page.getByLabel("Grant type").selectOption("client_credentials");
    await page.getByRole("button", { name: "Generate and Authorize" }).click();
    await page.waitForURL(`${run.server.url}/connections#c-${c.handle}`);
    await waitForStatus(page, c.name, "Connected");
    check(popups.length === 0, "a window opened for a client credentials connection");
    const last = await run.control.lastTokenRequest(c.clientId);
    check(last && last.grant_type === "client_credentials", "the provider saw no client credentials request");
    await rowOf(page, c.name).scrollIntoViewIfNeeded();
    await screenshot(page, "14-client-credentials-connected");
  });

  journey("device code: the page shows the code and the link, and turns Connected without a reload or a shift; reconnect from the list opens no window and the list follows", async (t) => {
    const page = await t.newPage();
    const c = { name: "Living Room TV", handle: "living-room-tv", clientId: "tv-client", clientSecret: "tv-secret-8a3f" };
    await registerClient(c.clientId, c.clientSecret);
    await fillCustom(page, c, { tokenOnly: true });
    await openAdvanced(page);
    await page.getByLabel("Grant type").selectOption("device_code");
    await page.getByLabel("Device authorization endpoint").fill(run.provider.deviceUrl);
    await page.getByRole("button", { name: "Generate and Authorize" }).click();
    await page.waitForURL(`${run.server.url}/connections/${c.handle}/device`);

    const code = (await page.locator("#user-code").innerText()).trim();
    check(/^[0-9A-F]{4}-[0-9A-F]{4}$/.test(code), `the user code shown is ${JSON.stringify(code)}`);
    const link = page.getByRole("link", { name: run.provider.deviceUrl, exact: true });
    check((await link.getAttribute("href")) === run.provider.deviceUrl, "the verification URI is not a link to it");
    const complete = await page.getByRole("link", { name: /code filled in/ }).getAttribute("href");
    check(new URL(complete).searchParams.get("user_code") === code, `the complete link is ${complete}`);
    await waitForStatus(page, c.name, "Pending authorization");
    await screenshot(page, "15-device-code");
    const before = await rowOf(page, c.name).boundingBox();

    // The person approves on "another device": a page of its own at the provider.
    const other = await page.context().newPage();
    await other.goto(complete);
    await other.getByRole("button", { name: "Approve" }).click();
    await other.getByText("Approved").waitFor();
    await other.close();

    await waitForStatus(page, c.name, "Connected");
    await page.getByText("Approved: the connection is connected.").waitFor();
    const after = await rowOf(page, c.name).boundingBox();
    check(before && after && before.y === after.y, `the row moved from y=${before?.y} to y=${after?.y}`);
    await screenshot(page, "16-device-code-connected");

    // Reconnect from the list: no window opens (not even an empty one), the device page comes next.
    await page.goto(`${run.server.url}/connections`);
    const popups = [];
    page.on("popup", (p) => popups.push(p));
    await rowOf(page, c.name).getByRole("button", { name: "Reconnect" }).click();
    await page.waitForURL(`${run.server.url}/connections/${c.handle}/device`);
    check(popups.length === 0, `reconnecting a device code connection from the list opened ${popups.length} window(s)`);
    await page.getByRole("link", { name: /code filled in/ }).waitFor();

    // A second device, left pending: back on the list, the person approves elsewhere and the list's row
    // follows by itself.
    const d = { ...c, name: "Kitchen TV", handle: "kitchen-tv" };
    await page.goto(`${run.server.url}/connections`);
    await fillCustom(page, d, { tokenOnly: true });
    await openAdvanced(page);
    await page.getByLabel("Grant type").selectOption("device_code");
    await page.getByLabel("Device authorization endpoint").fill(run.provider.deviceUrl);
    await page.getByRole("button", { name: "Generate and Authorize" }).click();
    await page.waitForURL(`${run.server.url}/connections/${d.handle}/device`);
    const second = await page.getByRole("link", { name: /code filled in/ }).getAttribute("href");
    await page.goto(`${run.server.url}/connections`);
    await waitForStatus(page, d.name, "Pending authorization");
    const approver = await page.context().newPage();
    await approver.goto(second);
    await approver.getByRole("button", { name: "Approve" }).click();
    await approver.getByText("Approved").waitFor();
    await approver.close();
    await waitForStatus(page, d.name, "Connected");
    check(page.url() === `${run.server.url}/connections`, `the list was left for ${page.url()}`);
  });
}
