// Helpers for the journey scripts in this directory: each script drives the web console in real
// headless Chromium (Debian's /usr/bin/chromium, never a downloaded browser) through
// playwright-core, and exits 0 when the journey passed, 1 with a message on stderr otherwise.
// tests/e2e/browser.rs runs them from the end-to-end suite; they also run by hand:
//   HOOKFLOW_BASE=http://127.0.0.1:43123 SCREENSHOT_DIR=/tmp/shots EMAIL=... PASSWORD=... \
//     node tests/browser/smoke.mjs
//
// Environment every script reads:
//   HOOKFLOW_BASE   the server's base URL, no trailing slash needed
//   SCREENSHOT_DIR  where shot() writes its PNGs (created if missing)
//   CHROMIUM        optional: the Chromium binary (default /usr/bin/chromium)
// plus whatever the script's header lists (credentials and the like).

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** Each Playwright action and navigation gives up after this long. */
export const ACTION_TIMEOUT_MS = 10_000;

// The whole script gives up after this long, so that it ends on its own even when something
// awaits forever; below run_journey's 120 s, so the reason printed here is the one reported.
const SCRIPT_TIMEOUT_MS = 100_000;
setTimeout(() => fail(`journey did not finish within ${SCRIPT_TIMEOUT_MS / 1000} s`), SCRIPT_TIMEOUT_MS).unref();

/** Prints the message on stderr and exits 1. */
export function fail(message) {
  // Playwright colours its call logs; the suite reads them as plain text.
  console.error(`FAIL: ${String(message).replace(/\x1b\[[0-9;]*m/g, '')}`);
  process.exit(1);
}

/** The value of a required environment variable; fails naming it when unset or empty. */
export function env(name) {
  const value = process.env[name];
  if (!value) fail(`environment variable ${name} is not set (see the script's header)`);
  return value;
}

/** The server's base URL from HOOKFLOW_BASE, without a trailing slash. */
export function base() {
  return env('HOOKFLOW_BASE').replace(/\/+$/, '');
}

/**
 * Starts headless Chromium with one 1280x800 page whose actions time out after 10 s.
 * Page errors and console errors are echoed on stderr, to explain a failure that follows.
 */
export async function launch() {
  screenshotDir(); // a missing SCREENSHOT_DIR fails now, not half-way through the journey
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    // Root in a container has no usable sandbox.
    args: ['--no-sandbox'],
    timeout: 30_000,
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.setDefaultTimeout(ACTION_TIMEOUT_MS);
    page.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);
    page.on('pageerror', (error) => console.error(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') {
        console.error(`console error: ${message.text()} (${message.location().url || page.url()})`);
      }
    });
    return { browser, page };
  } catch (error) {
    await browser.close();
    throw error;
  }
}

/** Saves a full-page screenshot as SCREENSHOT_DIR/<name>.png; returns its path. */
export async function shot(page, name) {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`bad screenshot name ${JSON.stringify(name)}`);
  const path = join(screenshotDir(), `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot ${path}`);
  return path;
}

function screenshotDir() {
  const dir = env('SCREENSHOT_DIR');
  mkdirSync(dir, { recursive: true });
  return dir;
}
