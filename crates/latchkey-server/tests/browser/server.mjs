// The latchkey server under test, for the browser suites (run.mjs in Chromium, firefox.mjs in Firefox): the
// real `latchkey serve` binary on a free loopback port, its log kept, its other commands at hand.

import { spawn, execFile } from "node:child_process";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const WORKSPACE = resolve(HERE, "../../../..");
export const BIN = process.env.LATCHKEY_BIN || join(WORKSPACE, "target/debug/latchkey");
export const SHOTS = resolve(process.env.LATCHKEY_SCREENSHOTS || join(WORKSPACE, "target/browser-screenshots"));

/** Bounds on every wait. */
export const ACTION_TIMEOUT_MS = 10_000;
const SERVER_START_TIMEOUT_MS = 30_000;
const SERVER_STOP_TIMEOUT_MS = 5_000;

export function withTimeout(promise, ms, what) {
  let timer;
  const bound = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

/** The environment for latchkey: ours, without any LATCHKEY_* setting that could point it elsewhere. */
export function latchkeyEnv(extra = {}) {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("LATCHKEY_")) env[name] = value;
  }
  return { ...env, LATCHKEY_LOG: "info", NO_COLOR: "1", ...extra };
}

export class Server {
  constructor(dir, logName = "latchkey-serve.log") {
    this.dir = dir;
    this.logLines = [];
    this.logFile = createWriteStream(join(SHOTS, logName));
  }

  /** Starts `latchkey serve` and reads the two lines it prints: where it runs, and the set-up link. */
  async start() {
    this.child = spawn(BIN, ["serve", "--listen", "127.0.0.1:0", "--allow-private-networks", "--login-burst", "1000"], {
      cwd: this.dir,
      env: latchkeyEnv(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.exited = once(this.child, "exit");
    const keep = (line) => {
      this.logLines.push(line);
      if (this.logLines.length > 400) this.logLines.shift();
      this.logFile.write(`${line}\n`);
    };
    createInterface({ input: this.child.stderr }).on("line", keep);
    const stdout = createInterface({ input: this.child.stdout });
    const started = new Promise((resolveStart, rejectStart) => {
      stdout.on("line", (line) => {
        keep(`[stdout] ${line}`);
        const running = line.match(/^latchkey is running at (\S+)/);
        if (running) this.url = running[1].replace(/\/$/, "");
        const setup = line.match(/^Finish set-up in your browser \(this link works once\): (\S+)/);
        if (setup) this.setupLink = setup[1];
        if (this.url && this.setupLink) resolveStart();
      });
      this.child.once("exit", (code, signal) =>
        rejectStart(new Error(`latchkey serve exited early (code ${code}, signal ${signal}):\n${this.tail()}`)),
      );
      this.child.once("error", rejectStart);
    });
    await withTimeout(started, SERVER_START_TIMEOUT_MS, "latchkey serve printing its URL and set-up link");
  }

  tail(lines = 25) {
    return this.logLines.slice(-lines).join("\n");
  }

  /** SIGTERM, then SIGKILL when it has not stopped within a bounded wait. */
  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const stopped = await Promise.race([
      this.exited.then(() => true),
      new Promise((r) => setTimeout(() => r(false), SERVER_STOP_TIMEOUT_MS)),
    ]);
    if (!stopped) {
      console.error(`latchkey serve (pid ${child.pid}) did not stop after SIGTERM; sending SIGKILL`);
      child.kill("SIGKILL");
      await this.exited;
    }
    await new Promise((r) => this.logFile.end(r));
  }

  /** Runs another latchkey command against the same data folder; resolves to its stdout. */
  cli(args, input) {
    return new Promise((resolveRun, rejectRun) => {
      const child = execFile(BIN, args, { cwd: this.dir, env: latchkeyEnv(), timeout: 30_000 }, (err, stdout, stderr) => {
        if (err) rejectRun(new Error(`latchkey ${args.join(" ")} failed: ${err.message}\n${stderr}`));
        else resolveRun(stdout.trim());
      });
      if (input !== undefined) child.stdin.end(input);
      else child.stdin.end();
    });
  }

  /** Asks the JSON API for a connection's token with an API key. */
  async token(handle, key, { force = false } = {}) {
    const url = `${this.url}/api/v1/connections/${handle}/token${force ? "?force_refresh=true" : ""}`;
    const response = await fetch(url, {
      headers: { authorization: `Bearer ${key}` },
      signal: AbortSignal.timeout(ACTION_TIMEOUT_MS),
    });
    return { status: response.status, body: await response.json().catch(() => null) };
  }
}
