// A mock OAuth 2.0 provider on 127.0.0.1 for the browser suite. It behaves like a strict real one:
//
// - GET /authorize shows a consent page with real "Allow" and "Deny" buttons; Allow redirects to the
//   redirect_uri with a code and the state, Deny with error=access_denied and an error_description;
// - POST /token implements authorization_code (checks client_id, client_secret, redirect_uri and the PKCE S256
//   verifier; a code works once), refresh_token (with rotation: the used refresh token stops working),
//   client_credentials, and the RFC 8628 device_code grant (authorization_pending until the person approves);
// - POST /device starts a device authorization; GET /device is the page where the person enters the user code
//   and clicks "Approve";
// - a client may be registered with quirks: { pkce: "reject" } refuses any code_challenge, { json: true } wants
//   a JSON token request body and refuses a form body;
// - GET /api/me is a protected resource that accepts the access tokens it issued (Bearer);
// - /control/* lets the suite register clients, revoke refresh tokens and read the last token request.
//
// Everything lives in memory; the suite starts one provider per run on a free loopback port.

import http from "node:http";
import { createHash, randomBytes } from "node:crypto";

/** The description the provider gives when the person clicks "Deny". */
export const DENY_DESCRIPTION = "The person at the mock provider declined to share their data";

const MAX_BODY = 64 * 1024;

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function s256(verifier) {
  return createHash("sha256").update(verifier).digest("base64url");
}

function token(prefix) {
  return `${prefix}-${randomBytes(18).toString("base64url")}`;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error("body too large"));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function send(res, status, body, headers = {}) {
  const isJson = typeof body !== "string";
  res.writeHead(status, {
    "content-type": isJson ? "application/json" : "text/html; charset=utf-8",
    "cache-control": "no-store",
    ...headers,
  });
  res.end(isJson ? JSON.stringify(body) : body);
}

function oauthError(res, status, error, description) {
  send(res, status, { error, error_description: description });
}

function consentPage(params, client) {
  const hidden = Object.entries(params)
    .map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`)
    .join("\n      ");
  const scopes = (params.scope || "").split(" ").filter(Boolean);
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Mock Provider · Authorize</title>
<style>
  body { font-family: sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem; color: #222; }
  .card { border: 1px solid #ccc; border-radius: 8px; padding: 1.5rem; }
  button { font-size: 1rem; padding: 0.5rem 1.5rem; margin-right: 0.5rem; }
</style></head>
<body>
  <div class="card">
    <h1>Mock Provider</h1>
    <p>The application <strong>${escapeHtml(client.client_id)}</strong> asks to access your account.</p>
    <p>Scopes: ${scopes.length ? scopes.map((s) => `<code>${escapeHtml(s)}</code>`).join(" ") : "<em>none</em>"}</p>
    <form method="post" action="/authorize">
      ${hidden}
      <button type="submit" name="decision" value="allow">Allow</button>
      <button type="submit" name="decision" value="deny">Deny</button>
    </form>
  </div>
</body>
</html>`;
}

function errorPage(message) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Mock Provider · Error</title></head>
<body><h1>Mock Provider: the request is invalid</h1><p>${escapeHtml(message)}</p></body></html>`;
}

/**
 * Starts the provider. Resolves to `{ url, close }`.
 */
export async function startProvider() {
  const clients = new Map(); // client_id -> { client_id, client_secret, quirks }
  const devices = new Map(); // device_code -> { client_id, user_code, approved }
  const codes = new Map(); // code -> { client_id, redirect_uri, code_challenge, scope, used }
  const refreshTokens = new Map(); // refresh token -> { client_id, scope, revoked }
  const accessTokens = new Map(); // access token -> { client_id, scope }
  const lastTokenRequest = new Map(); // client_id -> { seq, grant_type, client_secret, auth_method }
  const log = []; // every token request (without secrets), for failure reports

  function issue(client_id, scope) {
    const access = token("at");
    const refresh = token("rt");
    accessTokens.set(access, { client_id, scope });
    refreshTokens.set(refresh, { client_id, scope, revoked: false });
    return { access_token: access, token_type: "Bearer", expires_in: 3600, refresh_token: refresh, scope };
  }

  // GET /authorize: validate like a real provider, then show the consent page.
  function authorize(req, res, url) {
    const params = Object.fromEntries(url.searchParams);
    const client = clients.get(params.client_id);
    if (!client) {
      send(res, 400, errorPage(`unknown client_id ${params.client_id}`));
      return;
    }
    let redirect;
    try {
      redirect = new URL(params.redirect_uri);
    } catch {
      send(res, 400, errorPage("redirect_uri is missing or not a URL"));
      return;
    }
    if (redirect.hostname !== "127.0.0.1") {
      send(res, 400, errorPage("redirect_uri must point at 127.0.0.1 in this test"));
      return;
    }
    const rejectsPkce = client.quirks.pkce === "reject";
    const problem =
      params.response_type !== "code" ? "response_type must be code"
      : !params.state ? "state is missing"
      : rejectsPkce && params.code_challenge ? "this provider does not support PKCE: code_challenge is not allowed"
      : !rejectsPkce && !params.code_challenge ? "code_challenge is missing (PKCE is required)"
      : !rejectsPkce && params.code_challenge_method !== "S256" ? "code_challenge_method must be S256"
      : null;
    if (problem) {
      const back = new URL(redirect);
      back.searchParams.set("error", "invalid_request");
      back.searchParams.set("error_description", problem);
      if (params.state) back.searchParams.set("state", params.state);
      send(res, 302, "", { location: back.toString() });
      return;
    }
    send(res, 200, consentPage(params, client));
  }

  // POST /authorize: the person's decision.
  async function decide(req, res) {
    const form = new URLSearchParams(await readBody(req));
    const back = new URL(form.get("redirect_uri"));
    if (form.get("decision") === "allow") {
      const code = token("code");
      codes.set(code, {
        client_id: form.get("client_id"),
        redirect_uri: form.get("redirect_uri"),
        code_challenge: form.get("code_challenge"),
        scope: form.get("scope") || "",
        used: false,
      });
      back.searchParams.set("code", code);
    } else {
      back.searchParams.set("error", "access_denied");
      back.searchParams.set("error_description", DENY_DESCRIPTION);
    }
    back.searchParams.set("state", form.get("state"));
    send(res, 302, "", { location: back.toString() });
  }

  // The client's credentials from a Basic header or the body (RFC 6749 §2.3.1).
  function credentials(req, form) {
    const header = req.headers.authorization || "";
    if (header.startsWith("Basic ")) {
      const decoded = Buffer.from(header.slice(6), "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      return {
        client_id: decodeURIComponent(decoded.slice(0, colon)),
        client_secret: decodeURIComponent(decoded.slice(colon + 1)),
        auth_method: "client_secret_basic",
      };
    }
    return { client_id: form.get("client_id"), client_secret: form.get("client_secret"), auth_method: "client_secret_post" };
  }

  async function tokenEndpoint(req, res) {
    const type = req.headers["content-type"] || "";
    const isJson = type.startsWith("application/json");
    if (!isJson && !type.startsWith("application/x-www-form-urlencoded")) {
      oauthError(res, 400, "invalid_request", "the token request must be a form post");
      return;
    }
    const raw = await readBody(req);
    let form;
    try {
      form = isJson ? new URLSearchParams(Object.entries(JSON.parse(raw)).map(([k, v]) => [k, String(v)])) : new URLSearchParams(raw);
    } catch {
      oauthError(res, 400, "invalid_request", "the JSON body could not be read");
      return;
    }
    const creds = credentials(req, form);
    const wantsJson = Boolean(clients.get(creds.client_id)?.quirks.json);
    if (wantsJson !== isJson) {
      oauthError(res, 400, "invalid_request", wantsJson ? "this provider wants a JSON body" : "the token request must be a form post");
      return;
    }
    const grant_type = form.get("grant_type");
    const seq = log.length + 1;
    lastTokenRequest.set(creds.client_id, { seq, grant_type, client_secret: creds.client_secret, auth_method: creds.auth_method });
    const entry = { seq, client_id: creds.client_id, grant_type, outcome: "ok" };
    log.push(entry);
    const fail = (status, error, description) => {
      entry.outcome = `${error}: ${description}`;
      oauthError(res, status, error, description);
    };
    const client = clients.get(creds.client_id);
    if (!client || client.client_secret !== creds.client_secret) {
      fail(401, "invalid_client", "client authentication failed");
      return;
    }
    if (grant_type === "authorization_code") {
      const grant = codes.get(form.get("code"));
      if (!grant || grant.used) {
        fail(400, "invalid_grant", "the code is unknown or was used already");
        return;
      }
      grant.used = true;
      if (grant.client_id !== creds.client_id) {
        fail(400, "invalid_grant", "the code was issued to another client");
        return;
      }
      if (grant.redirect_uri !== form.get("redirect_uri")) {
        fail(400, "invalid_grant", "redirect_uri differs from the authorization request");
        return;
      }
      const verifier = form.get("code_verifier");
      if (client.quirks.pkce === "reject" ? verifier : !verifier || s256(verifier) !== grant.code_challenge) {
        fail(400, "invalid_grant", "the PKCE code_verifier does not match the code_challenge");
        return;
      }
      send(res, 200, issue(creds.client_id, grant.scope));
      return;
    }
    if (grant_type === "refresh_token") {
      const presented = form.get("refresh_token");
      const known = refreshTokens.get(presented);
      if (!known || known.revoked || known.client_id !== creds.client_id) {
        fail(400, "invalid_grant", "the refresh token is invalid, expired or revoked");
        return;
      }
      known.revoked = true; // rotation: a refresh token works once
      send(res, 200, issue(creds.client_id, known.scope));
      return;
    }
    if (grant_type === "client_credentials") {
      const access = token("at");
      accessTokens.set(access, { client_id: creds.client_id, scope: form.get("scope") || "" });
      send(res, 200, { access_token: access, token_type: "Bearer", expires_in: 3600 });
      return;
    }
    if (grant_type === "urn:ietf:params:oauth:grant-type:device_code") {
      const device = devices.get(form.get("device_code"));
      if (!device || device.client_id !== creds.client_id) {
        fail(400, "invalid_grant", "the device code is unknown");
        return;
      }
      if (!device.approved) {
        fail(400, "authorization_pending", "the person has not approved yet");
        return;
      }
      devices.delete(form.get("device_code"));
      send(res, 200, issue(creds.client_id, device.scope));
      return;
    }
    fail(400, "unsupported_grant_type", `grant_type ${grant_type} is not supported`);
  }

  // POST /device: a device authorization (RFC 8628 §3.1) for a known client.
  async function startDevice(req, res, base) {
    const form = new URLSearchParams(await readBody(req));
    const creds = credentials(req, form);
    const client = clients.get(creds.client_id);
    if (!client || client.client_secret !== creds.client_secret) {
      oauthError(res, 401, "invalid_client", "client authentication failed");
      return;
    }
    const device_code = token("dc");
    const user_code = `${randomBytes(2).toString("hex")}-${randomBytes(2).toString("hex")}`.toUpperCase();
    devices.set(device_code, { client_id: creds.client_id, user_code, scope: form.get("scope") || "", approved: false });
    send(res, 200, {
      device_code,
      user_code,
      verification_uri: `${base}/device`,
      verification_uri_complete: `${base}/device?user_code=${encodeURIComponent(user_code)}`,
      expires_in: 600,
      interval: 1,
    });
  }

  // GET /device: where the person types the code; POST /device/approve: the "Approve" button.
  function devicePage(res, code, message = "") {
    send(res, 200, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Mock Provider · Device</title></head>
<body><h1>Connect a device</h1>${message ? `<p role="status">${escapeHtml(message)}</p>` : ""}
<form method="post" action="/device/approve"><label for="user_code">Code</label>
<input id="user_code" name="user_code" value="${escapeHtml(code || "")}"> <button type="submit">Approve</button></form></body></html>`);
  }

  async function approveDevice(req, res) {
    const form = new URLSearchParams(await readBody(req));
    const code = (form.get("user_code") || "").trim().toUpperCase();
    const device = [...devices.values()].find((d) => d.user_code === code);
    if (!device) {
      devicePage(res, code, "That code is unknown or has expired.");
      return;
    }
    device.approved = true;
    devicePage(res, "", "Approved: you can go back to your device.");
  }

  function resource(req, res) {
    const header = req.headers.authorization || "";
    const found = header.startsWith("Bearer ") ? accessTokens.get(header.slice(7)) : undefined;
    if (!found) {
      send(res, 401, { error: "invalid_token" }, { "www-authenticate": 'Bearer error="invalid_token"' });
      return;
    }
    send(res, 200, { client_id: found.client_id, scope: found.scope });
  }

  async function control(req, res, url) {
    if (req.method === "POST" && url.pathname === "/control/clients") {
      const body = JSON.parse((await readBody(req)) || "{}");
      clients.set(body.client_id, { client_id: body.client_id, client_secret: body.client_secret, quirks: body.quirks || {} });
      send(res, 204, "");
      return;
    }
    if (req.method === "POST" && url.pathname === "/control/revoke-refresh-tokens") {
      const only = url.searchParams.get("client_id");
      let revoked = 0;
      for (const entry of refreshTokens.values()) {
        if (!entry.revoked && (!only || entry.client_id === only)) {
          entry.revoked = true;
          revoked += 1;
        }
      }
      send(res, 200, { revoked });
      return;
    }
    if (req.method === "GET" && url.pathname === "/control/last-token-request") {
      const found = lastTokenRequest.get(url.searchParams.get("client_id"));
      send(res, found ? 200 : 404, found || { error: "no token request from this client yet" });
      return;
    }
    if (req.method === "GET" && url.pathname === "/control/log") {
      send(res, 200, log);
      return;
    }
    send(res, 404, { error: "no such control endpoint" });
  }

  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, "http://127.0.0.1");
      if (url.pathname === "/authorize" && req.method === "GET") return authorize(req, res, url);
      if (url.pathname === "/authorize" && req.method === "POST") return await decide(req, res);
      if (url.pathname === "/token" && req.method === "POST") return await tokenEndpoint(req, res);
      if (url.pathname === "/api/me" && req.method === "GET") return resource(req, res);
      if (url.pathname === "/device" && req.method === "POST") return await startDevice(req, res, `http://127.0.0.1:${server.address().port}`);
      if (url.pathname === "/device" && req.method === "GET") return devicePage(res, url.searchParams.get("user_code"));
      if (url.pathname === "/device/approve" && req.method === "POST") return await approveDevice(req, res);
      if (url.pathname.startsWith("/control/")) return await control(req, res, url);
      send(res, 404, errorPage(`nothing at ${req.method} ${url.pathname}`));
    } catch (err) {
      if (!res.headersSent) send(res, 500, { error: "server_error", error_description: String(err) });
      else res.destroy();
    }
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address();
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    authorizationUrl: `${url}/authorize`,
    tokenUrl: `${url}/token`,
    deviceUrl: `${url}/device`,
    resourceUrl: `${url}/api/me`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The suite's side of /control/*: plain HTTP calls, as another process would make them. */
export function providerControl(url) {
  async function call(method, path, body) {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: body ? { "content-type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(5000),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }
  return {
    registerClient: (client_id, client_secret, quirks = {}) => call("POST", "/control/clients", { client_id, client_secret, quirks }),
    revokeRefreshTokens: (client_id) =>
      call("POST", `/control/revoke-refresh-tokens${client_id ? `?client_id=${encodeURIComponent(client_id)}` : ""}`),
    lastTokenRequest: async (client_id) => {
      const { status, body } = await call("GET", `/control/last-token-request?client_id=${encodeURIComponent(client_id)}`);
      return status === 200 ? body : null;
    },
    log: async () => (await call("GET", "/control/log")).body,
  };
}
