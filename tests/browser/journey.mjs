// The console's main journey, in real headless Chromium:
// sign in → generate a handler flow for three Activepieces events → test-run the FAILED
// flow.run.finished sample and see the nested failed-run branch taken → create a destination to
// a local receiver → Test webhook → the delivery appears in the destination's log → the audit
// log shows flow.created with its summary; then a viewer, who sees no edit controls and gets 403
// when posting anyway. A screenshot of every page visited.
//
// Environment:
//   HOOKFLOW_BASE            the server's base URL
//   EMAIL, PASSWORD          a platform admin
//   VIEWER_EMAIL             a viewer of the default project (same PASSWORD)
//   RECEIVER_URL             where the destination delivers (a local HTTP receiver)
//   SCREENSHOT_DIR           where the PNGs go
// Prints `signing-secret <whsec_...>` and `flow <id>` for the calling test to check the receiver.

import { base, env, fail, launch, shot } from './lib.mjs';

async function signIn(page, root, email, password) {
  await page.goto(`${root}/sign-in`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForURL((url) => url.pathname === '/flows');
}

async function expectText(locator, text, what) {
  const all = (await locator.allInnerTexts()).join(' | ');
  if (!all.includes(text)) throw new Error(`${what}: expected ${JSON.stringify(text)} in ${JSON.stringify(all.slice(0, 400))}`);
}

async function main() {
  const root = base();
  const password = env('PASSWORD');
  const { browser, page } = await launch();
  try {
    await page.goto(`${root}/sign-in`);
    await shot(page, '01-sign-in');
    await signIn(page, root, env('EMAIL'), password);
    await shot(page, '02-flows-empty');

    // Generate a handler flow for three Activepieces events.
    const generator = page.locator('[data-testid=generate]');
    for (const event of ['flow.run.finished', 'flow.created', 'user.signed.in']) {
      await generator.locator(`input[type=checkbox][value="activepieces|${event}"]`).check();
    }
    await generator.locator('button[type=submit]').click();
    // The flow is live with a webhook credential, shown this once above the flow's page.
    const card = page.locator('[data-testid=webhook-credential-card]');
    await card.waitFor();
    const flowId = await card.getAttribute('data-flow');
    const credential = await page.locator('[data-testid=webhook-credential]').inputValue();
    if (!/^whsec_[A-Za-z0-9+/=]{40,}$/.test(credential)) throw new Error(`webhook credential looks wrong: ${credential}`);
    const webhookUrl = await page.locator('[data-testid=webhook-url]').inputValue();
    if (!webhookUrl.endsWith(`/v1/webhooks/${flowId}`)) throw new Error(`webhook URL looks wrong: ${webhookUrl}`);
    console.log(`flow ${flowId}`);
    await page.locator('[data-testid=flow-graph]').waitFor();
    await expectText(page.locator('[data-testid=flow-graph]'), 'Failed run', 'the graph shows the nested router');
    await shot(page, '03-flow');

    // Test-run the FAILED flow.run.finished sample: the nested failed-run branch is taken.
    const test = page.locator('[data-testid=test-run]');
    await test.locator('select[name=event]').selectOption('flow.run.finished');
    await test.locator('button[type=submit]').click();
    await page.locator('[data-testid=trace]').waitFor();
    const taken = page.locator('tr.taken[data-branch="Failed run"]');
    if ((await taken.count()) !== 1) throw new Error('the trace does not show the "Failed run" branch taken');
    await shot(page, '04-test-run');

    // A destination to the local receiver, with the token and secret shown once.
    await page.click('nav a[href="/event-streaming"]');
    await page.waitForURL((url) => url.pathname === '/event-streaming');
    await shot(page, '05-event-streaming');
    const form = page.locator('[data-testid=new-destination]');
    await form.locator('input[name=name]').fill('Local receiver');
    await form.locator('input[name=url]').fill(env('RECEIVER_URL'));
    await form.locator('input[data-filter]').fill('flow.');
    await form.locator('input[type=checkbox][value="activepieces|flow.created"]').check();
    // Test webhook offers the events picked, not the whole catalog.
    const testOptions = await form.locator('select[data-follows-picker] option').evaluateAll((options) => options.map((o) => o.value));
    if (testOptions.join(' ') !== 'activepieces|flow.created') throw new Error(`Test webhook lists ${testOptions.length} events, not the one picked`);
    await form.locator('button[value=create]').click();
    await page.locator('[data-testid=secrets]').waitFor();
    const secret = await page.locator('[data-testid=signing-secret]').inputValue();
    if (!secret.startsWith('whsec_')) throw new Error(`signing secret looks wrong: ${secret}`);
    console.log(`signing-secret ${secret}`);
    const destinationId = await page.locator('[data-destination]').getAttribute('data-destination');
    await shot(page, '06-destination-created');

    // Test webhook: the sample goes out signed; the receiver answers.
    await page.locator('[data-testid=test-event]').selectOption('flow.created');
    await page.click('button:has-text("Send test event")');
    await page.locator('[data-testid=test-result]').waitFor();
    await expectText(page.locator('[data-testid=test-result]'), 'status 200', 'Test webhook result');
    await shot(page, '07-test-webhook');

    // A real event for the destination: generating another flow writes flow.created.
    await page.goto(`${root}/flows`);
    await page.locator('[data-testid=generate] input[type=checkbox][value="activepieces|flow.deleted"]').check();
    await page.locator('[data-testid=generate] button[type=submit]').click();
    await page.locator('[data-testid=webhook-credential-card]').waitFor();
    let delivered = false;
    for (let i = 0; i < 40 && !delivered; i++) {
      await page.goto(`${root}/event-streaming/${destinationId}`);
      delivered = (await page.locator('[data-testid=deliveries] tbody tr').count()) > 0;
      if (!delivered) await page.waitForTimeout(250);
    }
    if (!delivered) throw new Error('no delivery appeared in the destination log within 10 s');
    await expectText(page.locator('[data-testid=deliveries]'), '200', 'the delivery log');
    await shot(page, '08-delivery-log');

    // The audit log: flow.created with its human summary.
    await page.click('nav a[href="/audit"]');
    await page.waitForURL((url) => url.pathname === '/audit');
    await expectText(page.locator('tr[data-action="flow.created"]').first(), 'was created', 'flow.created summary');
    await shot(page, '09-audit-log');
    for (const [path, name] of [['/runs', '10-runs'], ['/plugins', '11-plugins'], ['/secrets', '12-secrets'], ['/projects', '13-projects']]) {
      await page.goto(`${root}${path}`);
      await shot(page, name);
    }

    // A viewer: no edit controls, and a post made anyway is refused by the API.
    const viewer = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const vpage = await viewer.newPage();
    vpage.setDefaultTimeout(10_000);
    await signIn(vpage, root, env('VIEWER_EMAIL'), password);
    await vpage.goto(`${root}/flows/${flowId}`);
    await vpage.locator('[data-testid=flow-graph]').waitFor();
    for (const control of ['[data-testid=editor]', '[data-testid=test-run]', 'button:has-text("Delete flow")']) {
      if ((await vpage.locator(control).count()) !== 0) throw new Error(`a viewer sees ${control}`);
    }
    await shot(vpage, '14-viewer-flow');
    const status = await vpage.evaluate(async (id) => {
      const csrf = document.querySelector('input[name=csrf]').value;
      const response = await fetch(`/flows/${id}/delete`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `csrf=${encodeURIComponent(csrf)}`,
      });
      return response.status;
    }, flowId);
    if (status !== 403) throw new Error(`a viewer's delete answered ${status}, not 403`);
    console.log('ok: journey passed');
  } catch (error) {
    await shot(page, 'failure').catch(() => {});
    throw error;
  } finally {
    await browser.close();
  }
}

main().catch((error) => fail(error instanceof Error ? error.message : String(error)));
