// Smoke journey: a person signs in to the console and lands on the flows page.
//
// Environment:
//   HOOKFLOW_BASE   the server's base URL, e.g. http://127.0.0.1:43123
//   EMAIL           e-mail address of an existing person
//   PASSWORD        that person's password
//   SCREENSHOT_DIR  where the screenshots go: sign-in.png (form filled in, before submitting),
//                   flows.png (after signing in); failure.png when the journey fails
//   CHROMIUM        optional, default /usr/bin/chromium
//
// Contract with the console: GET /sign-in is a form with input[name=email],
// input[name=password] and button[type=submit]; submitting valid credentials ends on a URL whose
// path ends in /flows, and that page has a [data-testid=whoami] element containing the e-mail.

import { base, env, fail, launch, shot } from './lib.mjs';

async function main() {
  const root = base();
  const email = env('EMAIL');
  const password = env('PASSWORD');

  const { browser, page } = await launch();
  try {
    const response = await page.goto(`${root}/sign-in`);
    if (!response || !response.ok()) {
      throw new Error(`GET ${root}/sign-in answered ${response ? response.status() : 'nothing'}`);
    }
    await page.fill('input[name=email]', email);
    await page.fill('input[name=password]', password);
    await shot(page, 'sign-in');

    await page.click('button[type=submit]');
    try {
      await page.waitForURL((url) => url.pathname.endsWith('/flows'));
    } catch {
      throw new Error(`after signing in the page is ${page.url()}, not /flows`);
    }

    const whoami = page.locator('[data-testid=whoami]');
    try {
      await whoami.first().waitFor();
    } catch {
      throw new Error(`${page.url()} has no [data-testid=whoami] element`);
    }
    const texts = await whoami.allInnerTexts();
    if (!texts.some((text) => text.includes(email))) {
      throw new Error(`[data-testid=whoami] says ${JSON.stringify(texts)}, not ${email}`);
    }
    await shot(page, 'flows');
    console.log(`ok: signed in as ${email}, at ${page.url()}`);
  } catch (error) {
    await shot(page, 'failure').catch(() => {});
    throw error;
  } finally {
    await browser.close();
  }
}

main().catch((error) => fail(error instanceof Error ? error.message : String(error)));
