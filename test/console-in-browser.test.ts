import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { SMCD_BIN } from './helpers/process-server.ts';
import { type Run, runProcess } from './helpers/run-process.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { type Creds, callV1 } from './helpers/sign.ts';
import { startReceiver } from './helpers/webhook-receiver.ts';

// Debian's Chromium: Playwright's own browser download cannot work on these machines.
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  // A name that is not localhost, to see the console on an insecure origin; it resolves to 127.0.0.1 only.
  '--host-resolver-rules=MAP smcd-console.test 127.0.0.1',
];
const OUT = fileURLToPath(new URL('../test-output/console/', import.meta.url));
const AWKWARD = "wave #1 (FRA) — 100% *done* !'~ 数据 & more+more";
const DOCS_SCREENSHOT = fileURLToPath(new URL('../docs/console.png', import.meta.url));

// CI installs chromium (.ci/run), so there a missing browser is a failure, not a skip.
const skip = !existsSync(CHROMIUM) && !process.env.CI ? `no Chromium at ${CHROMIUM} (apt-get install -y chromium)` : false;

const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv) => runProcess(cmd, args, { env });

/**
 * Runs the agent command line exactly as the console shows it, with `smcd` being
 * this checkout's bin/smcd.js, plus a private state dir and machine id.
 */
/** The environment of a machine to migrate: nothing of this test's smcd settings. */
function machineEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('SMCD_') || k.startsWith('ALIBABA_CLOUD_')) delete env[k];
  return { ...env, ...extra };
}

/** Runs the Node agent line shown in the dialog (`SMCD_CODE_ID=.. SMCD_CODE=.. smcd agent import ...`). */
async function runShownAgentCommand(line: string, extra: string[]): Promise<Run> {
  const words = line.split(' ');
  const env = machineEnv({});
  while (/^[A-Z_]+=/.test(words[0] ?? '')) {
    const [name, ...value] = words.shift()!.split('=');
    env[name!] = value.join('=');
  }
  assert.equal(words.shift(), 'smcd', line);
  return run(process.execPath, [SMCD_BIN, ...words, ...extra], env);
}

describe('the web console in headless Chromium', { skip }, () => {
  let s: TestServer;
  let context: BrowserContext;
  let page: Page;
  let profile: string;
  const stateDir = tempDir('smcd-console-agent-');
  const pageErrors: string[] = [];
  const created: { id: string; code: string; command: string; alternatives: string[] } = { id: '', code: '', command: '', alternatives: [] };
  const row = (id: string) => page.locator(`tr[data-id="${id}"]`);

  async function api(action: string, params: Record<string, string> = {}, creds: Creds = s.root) {
    const res = await callV1(s.url, creds, action, params);
    assert.equal(res.status, 200, res.text);
    return res.body;
  }

  async function shot(name: string) {
    await page.locator('.table-wrap.loading').first().waitFor({ state: 'detached' });
    await page.screenshot({ path: join(OUT, `${name}.png`) });
  }

  before(async () => {
    mkdirSync(OUT, { recursive: true });
    s = await startTestServer();
    profile = tempDir('smcd-chromium-');
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1360, height: 820 },
      locale: 'en-US',
      timezoneId: 'UTC',
    });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: s.url });
    page = context.pages()[0] ?? (await context.newPage());
    // CSP violations and script errors land here; the console must produce none.
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      // The API's 4xx answers to the wrong secret, the bad name and the limited key are provoked on purpose and shown in the page.
      if (msg.type() === 'error' && !/^Failed to load resource: the server responded with a status of 40[03]/.test(msg.text()))
        pageErrors.push(msg.text());
    });

    // Some codes in every state the list can show, for a realistic list and the README's screenshot.
    const frankfurt = await api('CreateAccessToken', {
      Name: 'frankfurt-wave-1',
      Description: 'web tier, first wave',
      Count: '20',
      TimeToLiveInDays: '14',
    });
    for (const [i, host] of ['web-01', 'web-02', 'web-03'].entries()) {
      await api(
        'ImportSourceServer',
        {
          MachineId: `seed-${host}`,
          Hostname: host,
          Platform: 'Ubuntu 22.04.4 LTS',
          Architecture: 'x86_64',
          KernelLevel: '5',
          SystemDiskSize: String(40 + i * 20),
          'DataDisk.1.Index': '1',
          'DataDisk.1.Path': '/data',
          'DataDisk.1.Size': '200',
        },
        { id: frankfurt.AccessTokenId, secret: frankfurt.AccessTokenCode },
      );
    }
    const erp = await api('CreateAccessToken', { Name: 'legacy-erp', Description: 'two database hosts', Count: '2', TimeToLiveInDays: '30' });
    for (const host of ['erp-db-1', 'erp-db-2']) {
      await api(
        'ImportSourceServer',
        {
          MachineId: `seed-${host}`,
          Hostname: host,
          Platform: 'CentOS Linux 7 (Core)',
          Architecture: 'x86_64',
          KernelLevel: '3',
          SystemDiskSize: '100',
        },
        { id: erp.AccessTokenId, secret: erp.AccessTokenCode },
      );
    }
    await api('CreateAccessToken', { Name: 'shanghai-db-tier', Count: '50', TimeToLiveInDays: '60', IpAddressRange: '10.20.0.0/16,10.21.0.0/16' });
    const retired = await api('CreateAccessToken', { Name: 'pilot-2024', Description: 'superseded by wave 1', Count: '5', TimeToLiveInDays: '7' });
    await api('DisableAccessToken', { AccessTokenId: retired.AccessTokenId });
  });

  after(async () => {
    await context?.close();
    await s?.close();
    for (const dir of [profile, stateDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is served at /console/ with a CSP that allows only this origin', async () => {
    const redirect = await fetch(`${s.url}/console`, { redirect: 'manual' });
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.get('location'), '/console/');
    for (const file of ['', 'app.js', 'app.css', 'sign-v1.js']) {
      const res = await fetch(`${s.url}/console/${file}`);
      assert.equal(res.status, 200, file);
      assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    }
  });

  it('refuses a wrong secret with the SMC error, then signs in with the root key held only in sessionStorage', async () => {
    await page.goto(`${s.url}/console/`);
    await page.locator('#signin-view').waitFor();
    await page.fill('#signin-id', s.root.id);
    await page.fill('#signin-secret', 'x'.repeat(30));
    await page.click('#signin-submit');
    const error = page.locator('#signin-error');
    await error.waitFor();
    assert.match(await error.innerText(), /SignatureDoesNotMatch/);
    assert.match(await error.innerText(), /RequestId [0-9A-F-]{36}/);
    await shot('01-sign-in-error');

    await page.fill('#signin-secret', s.root.secret);
    await page.click('#signin-submit');
    await page.locator('#codes-table tbody tr').first().waitFor();
    const storage = await page.evaluate(() => ({
      session: Object.fromEntries(Object.entries(sessionStorage)),
      local: localStorage.length,
      cookie: document.cookie,
    }));
    assert.deepEqual(storage.session, { 'smcd.accessKeyId': s.root.id, 'smcd.accessKeySecret': s.root.secret });
    assert.equal(storage.local, 0);
    assert.equal(storage.cookie, '');
    assert.equal(await page.locator('#session-key').innerText(), s.root.id);
  });

  it('lists codes with status, usage, expiry and address range', async () => {
    const list = (await api('ListAccessTokens')).AccessTokens.AccessToken as Array<Record<string, string>>;
    const byName = Object.fromEntries(list.map((t) => [t.Name, t]));
    const frankfurt = row(byName['frankfurt-wave-1'].AccessTokenId);
    await frankfurt.waitFor();
    assert.match(await frankfurt.innerText(), /activated[\s\S]*3 \/ 20 used[\s\S]*17 remaining[\s\S]*in 14 days[\s\S]*Any address/);
    const erp = await row(byName['legacy-erp'].AccessTokenId).innerText();
    assert.match(erp, /unactivated\s+all used[\s\S]*2 \/ 2 used/);
    assert.match(await row(byName['pilot-2024'].AccessTokenId).innerText(), /unactivated\s+disabled/);
    const shanghai = await row(byName['shanghai-db-tier'].AccessTokenId).innerText();
    assert.match(shanghai, /10\.20\.0\.0\/16[\s\S]*10\.21\.0\.0\/16/);
    await shot('02-codes-list');
  });

  it('shows an SMC error inside the create dialog', async () => {
    await page.click('#create-open');
    await page.fill('#create-name', '1-starts-with-a-digit');
    await page.click('#create-submit');
    const error = page.locator('#create-error');
    await error.waitFor();
    assert.match(await error.innerText(), /^InvalidParameter\.Name/);
    await shot('03-create-error');
    await page.click('#create-cancel');
  });

  it('creates a code and shows it once, in a copy box with the agent command line', async () => {
    await page.click('#create-open');
    await page.fill('#create-name', 'console-wave');
    // Characters the V1 canonicalization escapes specially ("!'()*", space, "~", non-ASCII), signed by Web Crypto.
    await page.fill('#create-description', AWKWARD);
    await page.fill('#create-count', '3');
    await page.fill('#create-ttl', '7');
    await page.fill('#create-ip-range', '127.0.0.0/8, ::1');
    await shot('04-create-form');
    await page.click('#create-submit');
    await page
      .locator('#created-code')
      .filter({ hasText: /^[A-Za-z0-9]{32}$/ })
      .waitFor();
    created.id = await page.locator('#created-id').innerText();
    created.code = await page.locator('#created-code').innerText();
    created.command = await page.locator('#created-command').innerText();
    assert.match(created.id, /^at-[a-z0-9]{20}$/);
    assert.equal(created.command, `curl -fsSL ${s.url}/agent/smcd-agent.sh | SMCD_CODE_ID=${created.id} SMCD_CODE=${created.code} sh -s -- import`);
    created.alternatives = [await page.locator('#created-command-wget').innerText(), await page.locator('#created-command-node').innerText()];
    assert.deepEqual(created.alternatives, [
      `wget -qO- ${s.url}/agent/smcd-agent.sh | SMCD_CODE_ID=${created.id} SMCD_CODE=${created.code} sh -s -- import`,
      `SMCD_CODE_ID=${created.id} SMCD_CODE=${created.code} smcd agent import --endpoint ${s.url}`,
    ]);
    await shot('05-code-shown-once');

    await page.click('#copy-code');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), created.code);
    await page.click('#copy-command');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), created.command);

    // Escape does not throw the code away; the explicit button does, and leaves nothing in the DOM.
    await page.keyboard.press('Escape');
    assert.equal(await page.locator('#create-dialog').evaluate((d) => (d as HTMLDialogElement).open), true);
    await page.click('#create-done');
    await page.locator('#create-dialog').waitFor({ state: 'hidden' });
    const html = await page.content();
    assert.ok(
      !html.includes(created.code),
      `the code is gone from the page once the dialog is closed: ${html.slice(Math.max(0, html.indexOf(created.code) - 300), html.indexOf(created.code) + 50)}`,
    );

    const item = row(created.id);
    await item.waitFor();
    assert.ok((await item.innerText()).includes(AWKWARD));
    assert.match(await item.innerText(), /console-wave[\s\S]*activated[\s\S]*0 \/ 3 used[\s\S]*127\.0\.0\.0\/8[\s\S]*::1/);
    const [listed] = (await api('ListAccessTokens', { 'AccessTokenId.1': created.id })).AccessTokens.AccessToken;
    assert.equal(listed.Description, AWKWARD);
    assert.equal(listed.TimeToLiveInDays, '7');
  });

  it('imports a source with the one-line command from the copy box and lists it with the code that imported it', async () => {
    // The line exactly as shown, run by sh; the environment keeps this test machine's own
    // systemd and cron untouched and its state in a scratch file.
    const agent = await run(
      '/bin/sh',
      ['-c', created.command],
      machineEnv({
        SMCD_NO_INSTALL: '1',
        SMCD_STATE_FILE: join(stateDir, 'state'),
        SMCD_MACHINE_ID: 'console-test-machine',
      }),
    );
    assert.equal(agent.code, 0, agent.stderr);
    const sourceId = /Import Source Server \[(s-[a-z0-9]{20})\] Successfully!/.exec(agent.stdout)?.[1];
    assert.ok(sourceId, agent.stdout);
    assert.equal((await api('ModifySourceServerAttribute', { SourceId: sourceId, Name: 'console-imported' })).RequestId.length, 36);
    // The Node agent line shown beside it works too (for a second machine).
    const node = await runShownAgentCommand(created.alternatives[1]!, ['--state-dir', stateDir, '--machine-id', 'console-test-machine-2']);
    assert.equal(node.code, 0, node.stderr);
    const nodeSource = /\[(s-[a-z0-9]{20})\]/.exec(node.stdout)?.[1];
    assert.ok(nodeSource, node.stdout);
    // Only the first machine stays, for the steps below; the second's use stays counted on the code.
    await api('DeleteSourceServer', { SourceId: nodeSource });

    await page.click('a[data-tab="sources"]');
    const item = row(sourceId);
    await item.waitFor();
    const text = await item.innerText();
    assert.match(text, /console-imported/);
    assert.match(text, /Available/);
    assert.ok(text.includes(created.id), text);
    assert.match(text, /System \d+ GiB|System —/);
    await shot('06-sources-list');

    // The code's usage went up by one per machine.
    await page.click('a[data-tab="codes"]');
    await row(created.id).filter({ hasText: '2 / 3 used' }).waitFor();
  });

  it('filters codes by status and name, and pages through them', async () => {
    await page.selectOption('#codes-status', 'unactivated');
    await page.click('#codes-filters button[type="submit"]');
    await page.locator('#codes-pager').filter({ hasText: '1–2 of 2' }).waitFor();
    const statuses = await page.locator('#codes-table tbody .badge').allInnerTexts();
    assert.deepEqual(statuses, ['unactivated', 'unactivated']);

    await page.selectOption('#codes-status', '');
    await page.fill('#codes-name', 'console-wave');
    await page.click('#codes-filters button[type="submit"]');
    await page.locator('#codes-pager').filter({ hasText: '1–1 of 1' }).waitFor();
    assert.equal(await page.locator('#codes-table tbody tr').count(), 1);

    await page.click('#codes-filters button[type="reset"]');
    await page.locator('#codes-pager').filter({ hasText: '1–5 of 5' }).waitFor();
    await page.locator('#codes-pager select').selectOption('10');
    await page.locator('#codes-pager').filter({ hasText: '1–5 of 5' }).waitFor();
    for (let i = 0; i < 7; i++) await api('CreateAccessToken', { Name: `bulk-${i}` });
    await page.click('#codes-refresh');
    await page.locator('#codes-pager').filter({ hasText: '1–10 of 12' }).waitFor();
    await page.getByRole('button', { name: 'Next ›', exact: true }).click();
    await page.locator('#codes-pager').filter({ hasText: '11–12 of 12' }).waitFor();
    assert.equal(await page.locator('#codes-table tbody tr').count(), 2);
    assert.equal(await page.getByRole('button', { name: 'Next ›', exact: true }).isDisabled(), true);
    await page.getByRole('button', { name: '‹ Previous', exact: true }).click();
    await page.locator('#codes-pager').filter({ hasText: '1–10 of 12' }).waitFor();
  });

  it('shows only the latest search, when an earlier one is answered after it', async () => {
    const [erp] = (await api('ListAccessTokens', { Name: 'legacy-erp' })).AccessTokens.AccessToken;
    const [shanghai] = (await api('ListAccessTokens', { Name: 'shanghai-db-tier' })).AccessTokens.AccessToken;
    // The first search reaches the server only once the second one's answer is on the page.
    const isFirst = (body: string | null) => new URLSearchParams(body ?? '').get('Name') === 'legacy-erp';
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    await page.route(`${s.url}/`, async (route) => {
      if (isFirst(route.request().postData())) await held;
      await route.continue();
    });
    try {
      const late = page.waitForResponse((res) => isFirst(res.request().postData()));
      await page.fill('#codes-name', 'legacy-erp');
      await page.click('#codes-filters button[type="submit"]');
      await page.fill('#codes-name', 'shanghai-db-tier');
      await page.click('#codes-filters button[type="submit"]');
      await row(shanghai.AccessTokenId).waitFor();
      release();
      assert.equal((await (await late).json()).AccessTokens.AccessToken[0].AccessTokenId, erp.AccessTokenId);
      // A round trip through the page that starts after the late answer arrived: by its end the page has handled that answer.
      await page.evaluate(() => fetch('/console/app.css', { cache: 'no-store' }).then((res) => res.text()));
      const shown = await page.locator('#codes-table tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id')));
      assert.deepEqual(shown, [shanghai.AccessTokenId]);
      assert.match(await page.locator('#codes-pager').innerText(), /1–1 of 1/);
      assert.equal(await page.locator('.table-wrap.loading').count(), 0);
    } finally {
      await page.unroute(`${s.url}/`);
    }
  });

  it('disables the code after confirmation and shows it unactivated', async () => {
    await page.fill('#codes-name', 'console-wave');
    await page.click('#codes-filters button[type="submit"]');
    const item = row(created.id);
    await page.locator('#codes-pager').filter({ hasText: '1–1 of 1' }).waitFor();
    await item.getByRole('button', { name: 'Disable', exact: true }).click();
    await page.locator('#confirm-dialog').waitFor();
    assert.match(await page.locator('#confirm-message').innerText(), new RegExp(created.id));
    await shot('07-confirm-disable');
    await page.click('#confirm-ok');
    await item.locator('.badge', { hasText: 'unactivated' }).waitFor();
    assert.match(await item.innerText(), /unactivated\s+disabled/);
    assert.equal(await item.getByRole('button', { name: 'Disable', exact: true }).isDisabled(), true);
    const [listed] = (await api('ListAccessTokens', { 'AccessTokenId.1': created.id })).AccessTokens.AccessToken;
    assert.equal(listed.Status, 'unactivated');
    // And the server now refuses that code.
    const refused = await callV1(s.url, { id: created.id, secret: created.code }, 'ImportSourceServer', { MachineId: 'after-disable' });
    assert.equal(refused.body.Code, 'AccessToken.Disabled');
    await shot('08-code-disabled');
  });

  it('filters sources by code, edits one and deletes it after confirmation', async () => {
    await row(created.id).getByRole('button', { name: 'Sources', exact: true }).click();
    await page.locator('#sources-view').waitFor();
    assert.equal(await page.inputValue('#sources-token'), created.id);
    await page.locator('#sources-pager').filter({ hasText: '1–1 of 1' }).waitFor();
    const item = page.locator('#sources-table tbody tr').first();
    const sourceId = (await item.getAttribute('data-id'))!;

    await item.getByRole('button', { name: 'Edit', exact: true }).click();
    await page.fill('#modify-name', 'console-renamed');
    await page.fill('#modify-description', 'renamed in the browser');
    await page.click('#modify-submit');
    await row(sourceId).filter({ hasText: 'console-renamed' }).waitFor();
    const [after] = (await api('DescribeSourceServers', { 'SourceId.1': sourceId })).SourceServers.SourceServer;
    assert.equal(after.Name, 'console-renamed');
    assert.equal(after.Description, 'renamed in the browser');

    // Cancel keeps it; confirming deletes it.
    await row(sourceId).getByRole('button', { name: 'Delete', exact: true }).click();
    await page.click('#confirm-cancel');
    assert.equal((await api('DescribeSourceServers', { 'SourceId.1': sourceId })).TotalCount, 1);
    await row(sourceId).getByRole('button', { name: 'Delete', exact: true }).click();
    await page.click('#confirm-ok');
    await page.locator('#sources-empty').waitFor();
    assert.equal((await api('DescribeSourceServers', { 'SourceId.1': sourceId })).TotalCount, 0);

    await page.selectOption('#sources-state', 'Available');
    await page.fill('#sources-token', '');
    await page.click('#sources-filters button[type="submit"]');
    await page.locator('#sources-pager').filter({ hasText: '1–5 of 5' }).waitFor();
    await shot('09-sources-available');
  });

  it('clears every source filter, the code the Sources button set too, and refreshes the list', async () => {
    const [erp] = (await api('ListAccessTokens', { Name: 'legacy-erp' })).AccessTokens.AccessToken;
    await page.click('a[data-tab="codes"]');
    await page.fill('#codes-name', 'legacy-erp');
    await page.click('#codes-filters button[type="submit"]');
    await row(erp.AccessTokenId).getByRole('button', { name: 'Sources', exact: true }).click();
    await page.locator('#sources-pager').filter({ hasText: '1–2 of 2' }).waitFor();
    await page.fill('#sources-name', 'no-source-has-this-name');
    await page.click('#sources-filters button[type="submit"]');
    await page.locator('#sources-pager').filter({ hasText: 'Nothing to show' }).waitFor();
    assert.equal(await page.locator('#sources-empty').isVisible(), true);

    await page.click('#sources-filters button[type="reset"]');
    await page.locator('#sources-pager').filter({ hasText: '1–5 of 5' }).waitFor();
    const fields = ['#sources-state', '#sources-name', '#sources-token'];
    assert.deepEqual(await Promise.all(fields.map((f) => page.inputValue(f))), ['', '', '']);
    assert.equal(await page.locator('#sources-empty').isVisible(), false);

    // Refresh shows what changed on the server meanwhile.
    const id = (await page.locator('#sources-table tbody tr').first().getAttribute('data-id'))!;
    await api('ModifySourceServerAttribute', { SourceId: id, Name: 'renamed-elsewhere' });
    await page.click('#sources-refresh');
    await row(id).filter({ hasText: 'renamed-elsewhere' }).waitFor();
  });

  it('edits the tags of a code and of a source in the tags dialog, and filters both lists by tag', async () => {
    await page.click('a[data-tab="codes"]');
    await page.click('#codes-filters button[type="reset"]');
    const [frankfurt] = (await api('ListAccessTokens', { Name: 'frankfurt-wave-1' })).AccessTokens.AccessToken;
    const codeId = frankfurt.AccessTokenId as string;
    const tagsOf = async (type: string, id: string) =>
      (await api('ListTagResources', { ResourceType: type, 'ResourceId.1': id })).TagResources.TagResource.map(
        (r: { TagKey: string; TagValue: string }) => `${r.TagKey}=${r.TagValue}`,
      );
    // The oldest code: on the last page, so found by its name.
    await page.fill('#codes-name', 'frankfurt-wave-1');
    await page.click('#codes-filters button[type="submit"]');

    await row(codeId).getByRole('button', { name: 'Tags', exact: true }).click();
    const dialog = page.locator('#tags-dialog');
    await dialog.waitFor();
    assert.equal(await page.locator('#tags-none').isVisible(), true);
    for (const [key, value] of [
      ['env', 'prod'],
      ['team', 'web'],
    ]) {
      await page.fill('#tags-key', key!);
      await page.fill('#tags-value', value!);
      await dialog.getByRole('button', { name: 'Add tag', exact: true }).click();
      await page
        .locator('#tags-list li')
        .filter({ hasText: `${key}=${value}` })
        .waitFor();
    }
    assert.deepEqual(await tagsOf('accesstoken', codeId), ['env=prod', 'team=web']);
    // A refused key is shown in the dialog, with the SMC error.
    await page.fill('#tags-key', 'acs:reserved');
    await dialog.getByRole('button', { name: 'Add tag', exact: true }).click();
    await page.locator('#tags-error').filter({ hasText: 'InvalidParameter.TagKey' }).waitFor();
    await dialog.getByRole('button', { name: 'Remove tag team', exact: true }).click();
    await page.locator('#tags-list li').filter({ hasText: 'team=web' }).waitFor({ state: 'detached' });
    assert.deepEqual(await tagsOf('accesstoken', codeId), ['env=prod']);
    await page.click('#tags-close');
    await row(codeId).locator('td.tags').filter({ hasText: 'env=prod' }).waitFor();

    // Every code, then only the tagged one (the pager tells the two answers apart).
    const codeCount = (await api('ListAccessTokens')).TotalCount as number;
    await page.click('#codes-filters button[type="reset"]');
    await page
      .locator('#codes-pager .pager-info')
      .filter({ hasText: new RegExp(`of ${codeCount}$`) })
      .waitFor();
    await page.fill('#codes-tag', 'env=prod');
    await page.click('#codes-filters button[type="submit"]');
    await page.locator('#codes-pager').filter({ hasText: '1–1 of 1' }).waitFor();
    assert.equal(await page.locator('#codes-table tbody tr').count(), 1);
    assert.equal(await row(codeId).isVisible(), true);

    const ofCode = (await api('DescribeSourceServers', { AccessTokenId: codeId })).SourceServers.SourceServer as Array<{ SourceId: string }>;
    const sourceId = ofCode[0]!.SourceId;
    await row(codeId).getByRole('button', { name: 'Sources', exact: true }).click();
    await page
      .locator('#sources-pager')
      .filter({ hasText: `1–${ofCode.length} of ${ofCode.length}` })
      .waitFor();
    await row(sourceId).getByRole('button', { name: 'Tags', exact: true }).click();
    await page.fill('#tags-key', 'rack');
    await page.fill('#tags-value', 'r7');
    await dialog.getByRole('button', { name: 'Add tag', exact: true }).click();
    await page.locator('#tags-list li').filter({ hasText: 'rack=r7' }).waitFor();
    await page.click('#tags-close');
    assert.deepEqual(await tagsOf('sourceserver', sourceId), ['rack=r7']);
    await page.fill('#sources-token', '');
    await page.fill('#sources-tag', 'rack');
    await page.click('#sources-filters button[type="submit"]');
    await page.locator('#sources-pager').filter({ hasText: '1–1 of 1' }).waitFor();
    assert.match(await row(sourceId).locator('td.tags').innerText(), /rack=r7/);
    await shot('10-sources-tagged');
    await page.click('#sources-filters button[type="reset"]');
    await page.click('a[data-tab="codes"]');
    await page.click('#codes-filters button[type="reset"]');
  });

  it('creates a code that requires approval, then approves one Pending source and rejects another after confirmation', async () => {
    await page.click('a[data-tab="codes"]');
    await page.click('#create-open');
    await page.fill('#create-name', 'approval-wave');
    await page.fill('#create-tags', 'wave=3, team=db');
    await page.check('#create-require-approval');
    await page.click('#create-submit');
    await page.locator('#create-result').waitFor();
    const code = { id: (await page.textContent('#created-id'))!, secret: (await page.textContent('#created-code'))! };
    await page.click('#create-done');
    const [listed] = (await api('ListAccessTokens', { 'AccessTokenId.1': code.id })).AccessTokens.AccessToken;
    assert.equal(listed.RequireApproval, 'true');
    assert.deepEqual(listed.Tags.Tag, [
      { Key: 'team', Value: 'db' },
      { Key: 'wave', Value: '3' },
    ]);
    await row(code.id).filter({ hasText: 'approval required' }).waitFor();

    const imported: string[] = [];
    for (const machine of ['pending-a', 'pending-b']) {
      imported.push((await api('ImportSourceServer', { MachineId: `console-${machine}`, Hostname: machine }, code)).SourceId);
    }
    const [first, second] = imported as [string, string];

    await page.click('a[data-tab="sources"]');
    await page.getByRole('button', { name: 'Pending approval', exact: true }).click();
    assert.equal(await page.inputValue('#sources-approval'), 'Pending');
    await page.locator('#sources-pager').filter({ hasText: '1–2 of 2' }).waitFor();
    assert.match(await row(first).innerText(), /Pending[\s\S]*team=db[\s\S]*wave=3/);
    await shot('11-sources-pending-approval');

    await row(first).getByRole('button', { name: 'Approve', exact: true }).click();
    await row(first).waitFor({ state: 'detached' });
    assert.equal((await api('DescribeSourceServers', { 'SourceId.1': first })).SourceServers.SourceServer[0].ApprovalStatus, 'Approved');

    // Cancel keeps it; confirming rejects (deletes) it.
    await row(second).getByRole('button', { name: 'Reject', exact: true }).click();
    await page.click('#confirm-cancel');
    assert.equal((await api('DescribeSourceServers', { 'SourceId.1': second })).SourceServers.SourceServer[0].ApprovalStatus, 'Pending');
    await row(second).getByRole('button', { name: 'Reject', exact: true }).click();
    assert.equal(await page.textContent('#confirm-ok'), 'Reject');
    await page.click('#confirm-ok');
    await page.locator('#sources-empty').waitFor();
    assert.equal((await api('DescribeSourceServers', { 'SourceId.1': second })).TotalCount, 0);

    // Leave the lists as the later tests expect them.
    await api('DeleteSourceServer', { SourceId: first });
    await api('DeleteAccessToken', { AccessTokenId: code.id });
    await page.click('#sources-filters button[type="reset"]');
  });

  it('deletes a code after confirmation', async () => {
    await page.click('a[data-tab="codes"]');
    await page.click('#codes-filters button[type="reset"]');
    const list = (await api('ListAccessTokens', { Name: 'pilot-2024' })).AccessTokens.AccessToken;
    const id = list[0].AccessTokenId as string;
    await page.locator('#codes-pager select').selectOption('20');
    await row(id).getByRole('button', { name: 'Delete', exact: true }).click();
    await page.click('#confirm-ok');
    await row(id).waitFor({ state: 'detached' });
    assert.equal((await api('ListAccessTokens', { 'AccessTokenId.1': id })).TotalCount, 0);
  });

  it('goes back a page when a delete empties the last one', async () => {
    await page.locator('#codes-pager select').selectOption('10');
    await page.locator('#codes-pager').filter({ hasText: '1–10 of 11' }).waitFor();
    await page.getByRole('button', { name: 'Next ›', exact: true }).click();
    await page.locator('#codes-pager').filter({ hasText: '11–11 of 11' }).waitFor();
    const only = page.locator('#codes-table tbody tr');
    assert.equal(await only.count(), 1);
    const id = (await only.getAttribute('data-id'))!;
    await row(id).getByRole('button', { name: 'Delete', exact: true }).click();
    await page.click('#confirm-ok');
    await page.locator('#codes-pager').filter({ hasText: '1–10 of 10' }).waitFor();
    assert.match(await page.locator('#codes-pager').innerText(), /Page 1 of 1/);
    assert.equal(await page.locator('#codes-table tbody tr').count(), 10);
    assert.equal(await page.locator('#codes-empty').isVisible(), false);
  });

  it('shows the audit trail, filtered by event type and resource, without any secret', async () => {
    const [deleted] = (await api('DescribeAuditEvents', { 'EventType.1': 'AccessToken.Delete' })).Events.Event;
    await page.click('a[data-tab="audit"]');
    await page.locator('#audit-table tbody tr').first().waitFor();
    assert.ok((await page.locator('#audit-table tbody tr').count()) > 10, 'the seeded changes are listed');
    await page.locator('#audit-type').selectOption('AccessToken.Delete');
    await page.fill('#audit-resource', deleted.ResourceId);
    await page.click('#audit-filters button[type="submit"]');
    // The unfiltered list holds several deletes: wait for the filtered one alone.
    await page.locator('#audit-table tbody tr').nth(1).waitFor({ state: 'detached' });
    await row(deleted.EventId).waitFor();
    const text = await row(deleted.EventId).innerText();
    assert.match(
      text,
      new RegExp(`AccessToken\\.Delete[\\s\\S]*${deleted.ResourceId}[\\s\\S]*accesstoken[\\s\\S]*${s.root.id}[\\s\\S]*127\\.0\\.0\\.1`),
    );
    await page.click('#audit-filters button[type="reset"]');
    await page.locator('#audit-table tbody tr').nth(1).waitFor();
    assert.ok(!(await page.locator('#audit-table').innerText()).includes(created.code), 'never the code');
    await shot('11-audit');
  });

  it('creates a webhook, shows its secret once, lists it without it, shows its deliveries and deletes it', async () => {
    const receiver = await startReceiver(() => 200);
    try {
      await page.click('a[data-tab="webhooks"]');
      await page.locator('#webhooks-empty').waitFor();
      await page.getByRole('button', { name: 'Create webhook', exact: true }).click();
      await page.fill('#webhook-url', 'ftp://127.0.0.1/nowhere');
      await page.getByRole('checkbox', { name: 'AccessToken.Create', exact: true }).check();
      await page.click('#webhook-submit');
      await page.locator('#webhook-error').waitFor();
      assert.match(await page.locator('#webhook-error').innerText(), /InvalidParameter\.Url[\s\S]*RequestId/);
      await page.fill('#webhook-url', `${receiver.url}/console`);
      await page.click('#webhook-submit');
      await page.locator('#webhook-result').waitFor();
      const secret = await page.locator('#webhook-created-secret').innerText();
      assert.match(secret, /^[A-Za-z0-9]{32}$/);
      const id = await page.locator('#webhook-created-id').innerText();
      await page.click('#webhook-done');
      await row(id).waitFor();
      assert.match(await row(id).innerText(), /\/console[\s\S]*AccessToken\.Create/);
      assert.ok(!(await page.content()).includes(secret), 'the secret left the page with its dialog');

      const announced = await api('CreateAccessToken', { Name: 'announced' });
      for (let i = 0; i < 200 && receiver.received.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      await row(id).getByRole('button', { name: 'Deliveries', exact: true }).click();
      const delivered = page.locator('#deliveries-table tbody tr').filter({ hasText: 'delivered' });
      await delivered.waitFor();
      assert.match(await delivered.innerText(), /AccessToken\.Create[\s\S]*delivered[\s\S]*1[\s\S]*HTTP 200/);
      await shot('12-webhooks');

      await row(id).getByRole('button', { name: 'Delete', exact: true }).click();
      await page.click('#confirm-ok');
      await row(id).waitFor({ state: 'detached' });
      assert.equal(await page.locator('#deliveries-panel').isVisible(), false);
      assert.equal((await api('ListWebhooks')).Webhooks.Webhook.length, 0);
      // The codes list the next tests count stays as it was.
      await api('DeleteAccessToken', { AccessTokenId: announced.AccessTokenId });
    } finally {
      await receiver.close();
    }
    await page.click('a[data-tab="codes"]');
  });

  it('signs out, clearing sessionStorage and the tables, also of an answer still on its way', async () => {
    // The README's screenshot: the codes list, default filters, everything loaded.
    await page.click('#codes-filters button[type="reset"]');
    await page.locator('#codes-pager').filter({ hasText: 'of 10' }).waitFor();
    // A refresh whose answer arrives only after signing out must not fill the next session's page.
    const isList = (body: string | null) => new URLSearchParams(body ?? '').get('Action') === 'ListAccessTokens';
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    await page.route(`${s.url}/`, async (route) => {
      if (isList(route.request().postData())) await held;
      await route.continue();
    });
    try {
      const late = page.waitForResponse((res) => isList(res.request().postData()));
      await page.click('#codes-refresh');
      await page.click('#sign-out');
      release();
      assert.equal((await late).status(), 200);
      // A round trip through the page that starts after the late answer arrived: by its end the page has handled that answer.
      await page.evaluate(() => fetch('/console/app.css', { cache: 'no-store' }).then((res) => res.text()));
      assert.equal(await page.locator('#codes-table tbody tr').count(), 0, 'the late answer did not fill the table');
      assert.equal(await page.locator('#codes-pager').innerText(), '');
    } finally {
      await page.unroute(`${s.url}/`);
    }
    await page.locator('#signin-view').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.equal(await page.locator('#tabs').isVisible(), false);
    // A reload stays signed out.
    await page.reload();
    await page.locator('#signin-view').waitFor();
    await shot('10-signed-out');
  });

  it('shows the refusal of a list in its tab, and signing out clears the filters', async () => {
    // A key that may list codes but not sources.
    const created = await run(
      process.execPath,
      [SMCD_BIN, 'keys', 'create', '--actions', 'ListAccessTokens', '--data-dir', s.dir, '--output', 'json'],
      machineEnv({}),
    );
    assert.equal(created.code, 0, created.stderr);
    const key = JSON.parse(created.stdout) as { AccessKeyId: string; AccessKeySecret: string };
    const signIn = async () => {
      await page.fill('#signin-id', key.AccessKeyId);
      await page.fill('#signin-secret', key.AccessKeySecret);
      await page.click('#signin-submit');
      await page.locator('#codes-pager').filter({ hasText: '1–10 of 10' }).waitFor();
    };
    await signIn();
    assert.equal(await page.locator('#codes-error').isVisible(), false);

    await page.click('a[data-tab="sources"]');
    const error = page.locator('#sources-error');
    await error.waitFor();
    assert.match(await error.innerText(), /^Forbidden\.RAM[\s\S]*DescribeSourceServers[\s\S]*not allowed to do that/);
    assert.equal(await page.locator('#sources-table tbody tr').count(), 0);
    await page.locator('#sources-view .table-wrap.loading').waitFor({ state: 'detached' });

    // A filter set before signing out is gone after signing in again.
    await page.click('a[data-tab="codes"]');
    await page.fill('#codes-name', 'legacy-erp');
    await page.click('#codes-filters button[type="submit"]');
    await page.locator('#codes-pager').filter({ hasText: '1–1 of 1' }).waitFor();
    await page.click('#sign-out');
    await page.locator('#signin-view').waitFor();
    await signIn();
    assert.equal(await page.inputValue('#codes-name'), '');
    await page.click('#sign-out');
    await page.locator('#signin-view').waitFor();
  });

  it('on plain HTTP away from localhost, where Web Crypto is unavailable, says so instead of failing to sign', async () => {
    await page.goto(`http://smcd-console.test:${s.port}/console/`);
    const error = page.locator('#signin-error');
    await error.waitFor();
    assert.match(await error.innerText(), /^InsecureContext[\s\S]*HTTPS/);
    assert.equal(await page.locator('#signin-submit').isDisabled(), true);
    assert.equal(await page.evaluate(() => window.isSecureContext), false);
    await shot('11-insecure-origin');
  });

  it('logged no script error or CSP violation', () => {
    assert.deepEqual(pageErrors, []);
  });

  it('saves a screenshot of the codes list (docs/console.png with SMCD_UPDATE_DOCS_SCREENSHOT=1)', () => {
    assert.ok(existsSync(join(OUT, '02-codes-list.png')));
    if (process.env.SMCD_UPDATE_DOCS_SCREENSHOT === '1') copyFileSync(join(OUT, '02-codes-list.png'), DOCS_SCREENSHOT);
  });
});
