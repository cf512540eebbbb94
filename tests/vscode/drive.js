// Drive code-server in headless Chromium and check, from the DOM, what the promptls extension
// shows a user. Run by tests/vscode/run.sh (it starts code-server and sets the environment):
//   CS_URL    code-server URL with ?folder= the workspace (a copy of examples/)
//   WS        that workspace folder, EXPECTED the `promptls check --format json` of it
//   OUT       where screenshots go (tests/output/)
//   PROMPTLS_E2E_ENABLE  comma-separated pending checks to run too, or `all`
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

// Checks that wait for the server, skipped unless named in PROMPTLS_E2E_ENABLE (or `all`); remove a
// name from this list to run it always. quickfix, codelens, inlay: the features being added;
// status-edit: promptls/status is not sent again when a pull request (textDocument/diagnostic,
// which VS Code sends right after each change) analysed the new version first.
const PENDING = [];

const URL = process.env.CS_URL;
const WS = process.env.WS;
const OUT = process.env.OUT;
const EXPECTED = JSON.parse(fs.readFileSync(process.env.EXPECTED, 'utf8'));
const ENABLED = new Set((process.env.PROMPTLS_E2E_ENABLE || '').split(',').map((s) => s.trim()).filter(Boolean));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const TASK = '.claude/commands/task.md';
const TDD = '.claude/modules/patterns/tdd-cycle.md';
const SMALL = '.claude/modules/development/small-change.md';
const API = '.claude/modules/development/api-design.md';
const PLAYBOOK = 'playbooks/release.md'; // a module only by the workspace's .promptls.toml (run.sh)

const T0 = Date.now();
const secs = () => ((Date.now() - T0) / 1000).toFixed(1);
const fmt = (n) => new Intl.NumberFormat('en-US').format(n);
const results = [];
let page;

function expected(rel) {
  const file = EXPECTED.files.find((f) => f.path === rel);
  if (!file) throw new Error(`the CLI did not report ${rel}`);
  return file;
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

async function shot(name) {
  const file = path.join(OUT, name);
  await page.screenshot({ path: file });
  return path.relative(process.cwd(), file);
}

async function check(name, fn) {
  const pending = PENDING.includes(name) && !ENABLED.has(name) && !ENABLED.has('all');
  if (pending) {
    results.push({ name, status: 'pending' });
    console.log(`PENDING ${name} (enable with PROMPTLS_E2E_ENABLE=${name})`);
    return;
  }
  const t = Date.now();
  try {
    const detail = await fn();
    results.push({ name, status: 'passed' });
    console.log(`PASS ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)${detail ? ': ' + detail : ''}`);
  } catch (error) {
    results.push({ name, status: 'failed' });
    console.log(`FAIL ${name}: ${error.message.split('\n')[0]}`);
    try {
      console.log(`     status bar: ${JSON.stringify(await statusBarText())}`);
      console.log(`     screenshot: ${await shot(`vscode-fail-${name}.png`)}`);
    } catch {
      // the page itself is gone
    }
  }
}

// ---- reading the workbench ------------------------------------------------------------------

async function statusBarText() {
  return (await page.locator('#workbench\\.parts\\.statusbar').innerText()).replace(/\s+/g, ' ');
}

/** Wait until the status bar contains `text`; the error says what it showed instead. */
async function waitStatusBar(text, timeout = 60000) {
  try {
    await page.waitForFunction(
      (t) => (document.querySelector('#workbench\\.parts\\.statusbar')?.innerText || '').replace(/\s+/g, ' ').includes(t),
      text,
      { timeout },
    );
  } catch {
    throw new Error(`status bar never showed ${JSON.stringify(text)}; it shows ${JSON.stringify(await statusBarText())}`);
  }
}

const ACTIVE_EDITOR = '.editor-group-container.active .editor-instance .monaco-editor';

/** The visible lines of the active editor, top to bottom (inlay hints included). */
async function visibleLines() {
  return page.evaluate((sel) => {
    const lines = [...document.querySelectorAll(`${sel} .view-lines .view-line`)];
    return lines
      .map((l) => ({ top: parseFloat(l.style.top) || 0, text: l.textContent.replace(/\u00a0/g, ' ') }))
      .sort((a, b) => a.top - b.top)
      .map((l) => l.text);
  }, ACTIVE_EDITOR);
}

async function runCommand(title) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 10000 });
  await input.fill('>' + title);
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first().waitFor({ timeout: 10000 });
  await page.keyboard.press('Enter');
}

/** Open a workspace file: its tab when it has one, else Quick Open (an absolute path opens
 * directly); two retries, since a keystroke can land before the widget is ready, or in a panel's
 * filter box that holds the focus (each retry first gives the focus back to the editor area). */
async function openFile(rel) {
  const name = path.basename(rel);
  const activeTab = page.locator('.editor-group-container.active .tab.active', { hasText: name });
  for (let attempt = 1; ; attempt++) {
    try {
      const tab = page.locator('.editor-group-container.active .tab', { hasText: name });
      if ((await tab.count()) === 1) {
        await tab.click();
      } else {
        await page.keyboard.press('Control+P');
        const input = page.locator('.quick-input-widget input');
        await input.waitFor({ state: 'visible', timeout: 10000 });
        await input.fill(path.join(WS, rel));
        await page.locator('.quick-input-widget .monaco-list-row', { hasText: name }).first().waitFor({ timeout: 10000 });
        await page.keyboard.press('Enter');
      }
      await activeTab.waitFor({ timeout: 10000 });
      await page.locator(`${ACTIVE_EDITOR} .view-lines .view-line`).first().waitFor({ timeout: 10000 });
      return;
    } catch (error) {
      if (attempt >= 3) throw new Error(`could not open ${rel}: ${error.message.split('\n')[0]}`);
      await page.keyboard.press('Escape');
      await page.keyboard.press('Escape');
      await page.locator(`${ACTIVE_EDITOR} .view-lines`).first().click({ position: { x: 5, y: 5 }, timeout: 3000 })
        .catch(() => undefined);
      await page.waitForTimeout(300);
    }
  }
}

async function goToLine(line) {
  await page.keyboard.press('Control+G');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 10000 });
  await input.fill(`:${line}`);
  await page.keyboard.press('Enter');
  await input.waitFor({ state: 'hidden', timeout: 10000 });
}

/** Save the active editor and return the file's new text (`before` if it never changed). */
async function saveAndRead(file, before) {
  let after = before;
  for (let attempt = 0; attempt < 5 && after === before; attempt++) {
    await page.locator(`${ACTIVE_EDITOR} textarea`).first().focus();
    await page.keyboard.press('Control+S');
    const deadline = Date.now() + 4000;
    while (after === before && Date.now() < deadline) {
      await page.waitForTimeout(200);
      after = fs.readFileSync(file, 'utf8');
    }
  }
  return after;
}

/** The text of the first ```xml fence of a markdown text. */
function xmlFence(text) {
  const m = /```xml\n([\s\S]*?)```/.exec(text);
  return m ? m[1] : '';
}

// ---- the checks -----------------------------------------------------------------------------

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'promptls-chromium-'));
  let ctx;
  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 900 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = ctx.pages()[0] || (await ctx.newPage());
    page.on('pageerror', (e) => console.log('PAGEERROR', e.message.slice(0, 300)));

    await page.goto(URL, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
    await page.waitForSelector('.explorer-folders-view .monaco-list-row', { timeout: 60000 });
    console.log(`workbench up (${secs()} s)`);

    const task = expected(TASK);
    const tdd = expected(TDD);
    const xmlError = tdd.diagnostics.find((d) => d.code === 'xml-syntax' && d.severity === 'error');
    assert(xmlError, `the CLI reports no xml-syntax error in ${TDD}`);

    await check('status-command', async () => {
      await openFile(TASK);
      const want = `≈${fmt(task.tokens)} / 8,000 tok · load ≈${fmt(task.loadTokens)}`;
      await waitStatusBar(want, 90000);
      return want;
    });

    await check('codelens', async () => {
      // `Loads N files · ≈T tokens · P % of 50,000` above the first line of the command
      const lens = page.locator(`${ACTIVE_EDITOR} .codelens-decoration`, { hasText: 'Loads' }).first();
      await lens.waitFor({ timeout: 30000 });
      const text = (await lens.innerText()).replace(/\s+/g, ' ');
      const m = /Loads (\d+) files? · ≈([\d,]+) tokens · ([\d.]+) ?% of ([\d,]+)/.exec(text);
      assert(m, `unexpected code lens ${JSON.stringify(text)}`);
      assert(Number(m[1]) === task.loads.length, `lens says ${m[1]} files, the CLI ${task.loads.length}: ${text}`);
      assert(m[2] === fmt(task.loadTokens), `lens says ≈${m[2]} tokens, the CLI ${fmt(task.loadTokens)}: ${text}`);
      const budget = Number(m[4].replace(/,/g, ''));
      const pct = (100 * task.loadTokens) / budget;
      assert(Math.abs(Number(m[3]) - pct) < 1, `lens says ${m[3]} %, expected about ${pct.toFixed(1)}: ${text}`);
      await shot('vscode-codelens.png');
      // the lens runs promptls.showLoadTree with the file's uri
      await lens.locator('a').first().click();
      await page.locator('.editor-group-container.active .tab.active', { hasText: 'load tree' }).waitFor({ timeout: 20000 });
      await page.keyboard.press('Control+W');
      await page.locator('.editor-group-container.active .tab.active', { hasText: 'task.md' }).waitFor({ timeout: 10000 });
      return text;
    });

    await check('inlay', async () => {
      // `≈N tok` beside a reference; N is the target's own tokens from the CLI
      await page.waitForFunction(
        (sel) => /≈[\d,]+\s*tok/.test(document.querySelector(`${sel} .view-lines`)?.textContent || ''),
        ACTIVE_EDITOR,
        { timeout: 30000 },
      );
      const lines = await visibleLines();
      const checked = [];
      for (const target of task.loads.slice(1)) {
        const ref = target.replace(/^\.claude\/(modules\/)?/, '');
        const line = lines.find((l) => l.includes(ref));
        if (!line) continue;
        const m = /≈([\d,]+)\s*tok/.exec(line);
        assert(m, `no inlay hint on the line of ${ref}: ${JSON.stringify(line)}`);
        const want = fmt(expected(target).tokens);
        assert(m[1] === want, `hint ≈${m[1]} tok beside ${ref}, the CLI says ${want}`);
        checked.push(`${ref} ≈${m[1]}`);
      }
      assert(checked.length > 0, `no line of ${TASK} names one of its loads: ${JSON.stringify(lines)}`);
      await shot('vscode-inlay.png');
      return checked.join(', ');
    });

    await check('load-tree', async () => {
      // a click on the status bar item runs promptls.showLoadTree for the active file
      await page.locator('#workbench\\.parts\\.statusbar .statusbar-item', { hasText: `≈${fmt(task.tokens)} /` }).first().click();
      const tab = page.locator('.editor-group-container.active .tab.active', { hasText: 'load tree' });
      await tab.waitFor({ timeout: 20000 });
      const header = `${task.loads.length} files, ≈${fmt(task.loadTokens)} tokens`;
      await page.waitForFunction(
        ([sel, h]) => (document.querySelector(`${sel} .view-lines`)?.textContent || '').replace(/\u00a0/g, ' ').includes(h),
        [ACTIVE_EDITOR, header],
        { timeout: 20000 },
      ).catch(async () => {
        throw new Error(`load tree does not say "${header}": ${JSON.stringify((await visibleLines()).slice(0, 4))}`);
      });
      const lines = await visibleLines();
      for (const rel of task.loads.slice(1)) {
        assert(lines.some((l) => l.includes(path.basename(rel))), `load tree lacks ${rel}: ${JSON.stringify(lines)}`);
      }
      await page.keyboard.press('Control+W');
      return header;
    });

    await check('status-module', async () => {
      await openFile(TDD);
      const want = `≈${fmt(tdd.tokens)} / 8,000 tok`;
      await waitStatusBar(want);
      const text = await statusBarText();
      assert(!text.includes(`${want} · load`), `a module shows a load cost: ${text}`);
      return want;
    });

    await check('xml-syntax', async () => {
      // the Problems panel lists the error with its code; a click reveals the squiggle
      await page.locator(ACTIVE_EDITOR).first().click({ position: { x: 200, y: 10 } });
      await page.keyboard.press('Control+Shift+M');
      const row = page.locator('.markers-panel .monaco-list-row', { hasText: xmlError.message }).first();
      await row.waitFor({ timeout: 60000 }).catch(async () => {
        const rows = await page.locator('.markers-panel .monaco-list-row').allInnerTexts();
        throw new Error(`no Problems row says ${JSON.stringify(xmlError.message)}; rows: ${JSON.stringify(rows.slice(0, 12))}`);
      });
      const text = (await row.innerText()).replace(/\s+/g, ' ');
      assert(text.includes('xml-syntax'), `the Problems row lacks the code: ${text}`);
      assert(text.includes(`[Ln ${xmlError.range.start.line + 1}, Col ${xmlError.range.start.character + 1}]`),
        `the Problems row is not at the CLI's position ${JSON.stringify(xmlError.range.start)}: ${text}`);
      await row.click();
      await page.locator(`${ACTIVE_EDITOR} .squiggly-error`).first().waitFor({ timeout: 30000 });
      // for the picture: only this file's problems
      const filter = page.getByPlaceholder(/^Filter \(e\.g\./).first();
      if (await filter.isVisible()) {
        await filter.fill(path.basename(TDD));
        await page.waitForTimeout(300);
      }
      const file = await shot('vscode-status.png');
      return `${text}; screenshot ${file}`;
    });

    await check('selection', async () => {
      await page.locator(`${ACTIVE_EDITOR} .view-lines`).first().click();
      await page.keyboard.press('Control+A');
      const want = `sel ≈${fmt(tdd.rawTokens)} tok`;
      await waitStatusBar(want, 20000);
      await page.keyboard.press('ArrowDown');
      return want;
    });

    await check('status-edit', async () => {
      // typing changes the count: the server re-analyses the buffer and sends promptls/status again
      await page.locator(`${ACTIVE_EDITOR} textarea`).first().focus();
      await page.keyboard.press('Control+End');
      await page.keyboard.press('Enter');
      await page.keyboard.type('Twelve more words go here so that the token count of the file goes up.');
      const before = tdd.tokens;
      let shown = null;
      for (const deadline = Date.now() + 20000; Date.now() < deadline; await page.waitForTimeout(250)) {
        shown = /≈([\d,]+) \/ 8,000 tok/.exec(await statusBarText());
        if (shown && Number(shown[1].replace(/,/g, '')) > before) break;
      }
      assert(shown && Number(shown[1].replace(/,/g, '')) > before,
        `after typing, the status bar still shows ≈${shown ? shown[1] : '?'} tokens (the file had ${fmt(before)})`);
      return `≈${fmt(before)} -> ≈${shown[1]}`;
    });

    await check('quickfix', async () => {
      const small = expected(SMALL);
      const file = path.join(WS, SMALL);
      const before = fs.readFileSync(file, 'utf8');
      await openFile(SMALL);
      await waitStatusBar(`≈${fmt(small.tokens)} / 8,000 tok`);
      const line = before.split('\n').findIndex((l) => l.startsWith('<module name="small-change"'));
      assert(line >= 0, `no <module> line in ${SMALL}`);
      await goToLine(line + 1);
      await page.keyboard.press('Control+.');
      const action = page.locator('.action-widget .monaco-list-row', { hasText: /Compress .*block/ }).first();
      await action.waitFor({ timeout: 20000 }).catch(async () => {
        const rows = await page.locator('.action-widget .monaco-list-row').allInnerTexts();
        throw new Error(`no "Compress … block" action; the menu has ${JSON.stringify(rows)}`);
      });
      const title = (await action.innerText()).replace(/\s+/g, ' ').trim();
      assert(/Compress .*block: -\d[\d,]* tokens \(-\d+ ?%\)/.test(title), `unexpected action title ${JSON.stringify(title)}`);
      await shot('vscode-quickfix.png');
      // choose it with the keyboard: the list has the focus, its first item is focused
      for (let i = 0; i < 20; i++) {
        const focused = await page.locator('.action-widget .monaco-list-row.focused').first().innerText().catch(() => '');
        if (/Compress .*block/.test(focused)) break;
        await page.keyboard.press('ArrowDown');
      }
      await page.keyboard.press('Enter');
      // the edit makes the editor dirty; save it and read the file back
      await page.locator('.editor-group-container.active .tab.active.dirty').waitFor({ timeout: 20000 });
      const after = await saveAndRead(file, before);
      const [b, a] = [xmlFence(before).length, xmlFence(after).length];
      assert(a > 0 && a < b, `the XML block went from ${b} to ${a} characters`);
      await shot('vscode-quickfix-after.png');
      return `${title}; XML block ${b} -> ${a} characters`;
    });

    await check('compress-command', async () => {
      // promptls.compressFile applies the server's source.compressXml.promptls action to the file
      const file = path.join(WS, API);
      const before = fs.readFileSync(file, 'utf8');
      await openFile(API);
      await waitStatusBar(`≈${fmt(expected(API).tokens)} / 8,000 tok`);
      await runCommand('promptls: Compress XML Blocks in This File');
      await page.locator('.editor-group-container.active .tab.active.dirty').waitFor({ timeout: 20000 });
      const after = await saveAndRead(file, before);
      const [b, a] = [xmlFence(before).length, xmlFence(after).length];
      assert(a > 0 && a < b, `the XML block went from ${b} to ${a} characters`);
      // a second run finds nothing left to do and says so once
      await runCommand('promptls: Compress XML Blocks in This File');
      await page.locator('.notifications-toasts .notification-list-item-message', { hasText: 'nothing to compress' })
        .first().waitFor({ timeout: 20000 });
      return `XML block ${b} -> ${a} characters, then "nothing to compress"`;
    });

    await check('dashboard', async () => {
      // promptls.showDashboard: the server's report in a webview; clicking a command opens it
      await runCommand('promptls: Show Budget Dashboard');
      // a command none of the earlier checks changed the load of (they edited these files)
      const touched = [TDD, SMALL, API];
      const command = EXPECTED.files.find(
        (f) => f.kind === 'command' && f.path !== TASK && !f.loads.some((p) => touched.includes(p)),
      );
      assert(command !== undefined, 'no untouched command in the expected figures');
      let frame;
      for (let i = 0; i < 100 && frame === undefined; i++) {
        for (const f of page.frames()) {
          if ((await f.locator(`[data-path="${command.path}"]`).count().catch(() => 0)) > 0) frame = f;
        }
        if (frame === undefined) await page.waitForTimeout(200);
      }
      assert(frame !== undefined, 'no webview shows the dashboard');
      const text = await frame.locator('body').innerText();
      const want = fmt(command.loadTokens);
      assert(text.includes(want), `the dashboard does not show ${want} for ${command.path}`);
      await shot('vscode-dashboard.png');
      await frame.locator(`[data-path="${command.path}"]`).first().click();
      await page.locator('.editor-group-container .tab.active', { hasText: path.basename(command.path) }).first()
        .waitFor({ timeout: 10000 });
      return `${command.path} ≈${want} shown; clicking it opened the file`;
    });

    await check('project-kinds', async () => {
      // a folder only the workspace's .promptls.toml [kinds] makes a prompt folder: the client
      // reads it too, hands the file to the server, and shows its count
      const playbook = expected(PLAYBOOK);
      await openFile(PLAYBOOK);
      const want = `≈${fmt(playbook.tokens)} / 8,000 tok`;
      await waitStatusBar(want);
      return want;
    });

    await check('no-python', async () => {
      // an unusable promptls.server.pythonPath: the server restarts, fails, and the user gets ONE
      // notification saying what to set, however many prompt files are open or opened
      const settingsFile = path.join(WS, '.vscode', 'settings.json');
      fs.mkdirSync(path.dirname(settingsFile), { recursive: true });
      fs.writeFileSync(settingsFile, JSON.stringify({ 'promptls.server.pythonPath': '/nonexistent/python3' }));
      const toast = page.locator('.notifications-toasts .notification-list-item', { hasText: 'promptls.server.pythonPath' });
      await toast.first().waitFor({ timeout: 30000 });
      await page.locator('#workbench\\.parts\\.statusbar .statusbar-item:has(.codicon-circle-slash)', { hasText: 'promptls' })
        .first().waitFor({ timeout: 10000 }).catch(async () => {
          throw new Error(`the status bar does not show the stopped server: ${await statusBarText()}`);
        });
      await openFile(TASK);
      await openFile(SMALL);
      await page.waitForTimeout(2000);
      // toasts hide themselves after a while: count in the notification centre, which keeps all
      await runCommand('Notifications: Show Notifications');
      const kept = page.locator('.notifications-center .notification-list-item', { hasText: 'promptls.server.pythonPath' });
      await kept.first().waitFor({ timeout: 10000 });
      const count = await kept.count();
      assert(count === 1, `${count} notifications about the Python`);
      const text = (await kept.first().innerText()).replace(/\s+/g, ' ');
      await shot('vscode-no-python.png');
      fs.rmSync(settingsFile);
      return text.slice(0, 160);
    });
  } catch (error) {
    results.push({ name: 'workbench', status: 'failed' });
    console.log(`FAIL workbench: ${error.message.split('\n')[0]}`);
    if (page) await shot('vscode-fail-workbench.png').catch(() => undefined);
  } finally {
    if (ctx) await ctx.close().catch(() => undefined);
    fs.rmSync(profile, { recursive: true, force: true });
  }
  const count = (s) => results.filter((r) => r.status === s).length;
  const pending = results.filter((r) => r.status === 'pending').map((r) => r.name);
  if (pending.length) console.log(`pending (not run): ${pending.join(', ')}`);
  console.log(`browser part: ${secs()} s`);
  console.log(`${count('passed')} passed, ${count('failed')} failed`);
  process.exit(count('failed') === 0 && count('passed') > 0 ? 0 : 1);
}

main();
