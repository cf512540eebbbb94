// The budget dashboard in a webview: the server's `promptls/report` HTML (nothing computed here),
// refreshed when the server reports an analysis or a file is saved; clicking a bar opens its file.
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';

export const REPORT = 'promptls/report';

interface ReportAnswer {
  /** The workspace folder's URI; `data-path`s are relative to it. */
  root?: string;
  html?: string;
  problem?: string | null;
}

export class Dashboard implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private root: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly client: () => LanguageClient | undefined) {
    this.disposables.push(
      vscode.workspace.onDidSaveTextDocument(() => {
        this.refreshSoon();
      }),
    );
  }

  /** Open (or reveal) the dashboard. */
  async show(): Promise<void> {
    if (this.panel === undefined) {
      const panel = vscode.window.createWebviewPanel(
        'promptls.dashboard',
        'promptls: budget dashboard',
        vscode.ViewColumn.Active,
        { enableScripts: true, retainContextWhenHidden: true, localResourceRoots: [] },
      );
      this.panel = panel;
      panel.onDidDispose(() => {
        this.panel = undefined;
      });
      panel.webview.onDidReceiveMessage((message: unknown) => {
        this.onMessage(message);
      });
    } else {
      this.panel.reveal();
    }
    await this.refresh();
  }

  /** Something changed: refresh the open dashboard after a short pause. */
  refreshSoon(): void {
    if (this.panel === undefined) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.refresh();
    }, 500);
  }

  private async refresh(): Promise<void> {
    const panel = this.panel;
    const client = this.client();
    if (panel === undefined || client?.isRunning() !== true) return;
    const nonce = crypto.randomBytes(16).toString('base64');
    const answer = await client.sendRequest<ReportAnswer>(REPORT, { format: 'html', nonce });
    this.root = answer.root;
    const policy =
      `default-src 'none'; img-src ${panel.webview.cspSource} data:; ` +
      `style-src 'nonce-${nonce}'; script-src 'nonce-${nonce}';`;
    const html = answer.html ?? `<p>${answer.problem ?? 'no report'}</p>`;
    panel.webview.html = html.replace(
      /<head>/i,
      `<head><meta http-equiv="Content-Security-Policy" content="${policy}">`,
    );
  }

  private onMessage(message: unknown): void {
    if (typeof message !== 'object' || message === null) return;
    const { command, path } = message as { command?: unknown; path?: unknown };
    if (command !== 'open' || typeof path !== 'string' || this.root === undefined) return;
    const target = vscode.Uri.joinPath(vscode.Uri.parse(this.root), path);
    void vscode.window.showTextDocument(target, { viewColumn: vscode.ViewColumn.Beside });
  }

  dispose(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.panel?.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
