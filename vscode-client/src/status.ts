// The status bar item: the server's figures for the active prompt file (`promptls/status`), and the
// selection's count (`promptls/countTokens`). Nothing is computed here.
import * as vscode from 'vscode';

/** The `promptls/status` notification. */
export interface StatusParams {
  uri: string;
  version: number | null;
  kind: string;
  tokens: number;
  rawTokens?: number;
  budget: number | null;
  loadTokens: number;
  loadBudget: number | null;
  loadFiles: number;
  encoding?: string;
}

/** What the item needs from the language client. */
export interface StatusHost {
  isPromptDocument(document: vscode.TextDocument): boolean;
  /** The selection's tokens from the server, or undefined when it cannot say. */
  countTokens(document: vscode.TextDocument, ranges: readonly vscode.Range[]): Promise<number | undefined>;
}

const SELECTION_DELAY_MS = 150;
const numbers = new Intl.NumberFormat('en-US');

export function formatTokens(value: number): string {
  return numbers.format(value);
}

function percent(value: number, budget: number | null): string {
  return budget ? ` (${Math.round((value / budget) * 100)} %)` : '';
}

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly byUri = new Map<string, StatusParams>();
  private readonly disposables: { dispose(): unknown }[] = [];
  private selection: { key: string; tokens: number } | undefined;
  private selectionTimer: NodeJS.Timeout | undefined;
  private selectionRequest = 0;
  private serverProblem: string | undefined;

  constructor(private readonly host: StatusHost) {
    this.item = vscode.window.createStatusBarItem('promptls.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'promptls tokens';
    this.item.command = 'promptls.showLoadTree';
    this.disposables.push(
      this.item,
      vscode.window.onDidChangeActiveTextEditor(() => {
        this.clearSelection();
        this.scheduleSelection();
        this.render();
      }),
      vscode.window.onDidChangeTextEditorSelection((event) => {
        if (event.textEditor === vscode.window.activeTextEditor) this.scheduleSelection();
      }),
      vscode.workspace.onDidCloseTextDocument((document) => {
        this.byUri.delete(document.uri.toString());
      }),
    );
    this.render();
  }

  /** A `promptls/status` notification: keep the newest figures per document. */
  update(uri: vscode.Uri, params: StatusParams): void {
    const key = uri.toString();
    const previous = this.byUri.get(key);
    if (
      previous?.version !== null &&
      previous?.version !== undefined &&
      params.version !== null &&
      params.version < previous.version
    ) {
      return; // a late notification for an older version
    }
    this.byUri.set(key, params);
    if (key === vscode.window.activeTextEditor?.document.uri.toString()) this.render();
  }

  /** The server is not running (`problem` says why), or runs again (`undefined`). */
  setServerProblem(problem: string | undefined): void {
    this.serverProblem = problem;
    this.render();
  }

  /** Forget every figure (the server restarted). */
  reset(): void {
    this.byUri.clear();
    this.clearSelection();
    this.render();
  }

  private clearSelection(): void {
    this.selection = undefined;
    this.selectionRequest++;
  }

  private scheduleSelection(): void {
    if (this.selectionTimer !== undefined) clearTimeout(this.selectionTimer);
    this.selectionTimer = setTimeout(() => {
      this.selectionTimer = undefined;
      void this.refreshSelection();
    }, SELECTION_DELAY_MS);
  }

  private async refreshSelection(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    const request = ++this.selectionRequest;
    const ranges = editor?.selections.filter((s) => !s.isEmpty) ?? [];
    if (editor === undefined || ranges.length === 0 || !this.host.isPromptDocument(editor.document)) {
      if (this.selection !== undefined) {
        this.selection = undefined;
        this.render();
      }
      return;
    }
    const tokens = await this.host.countTokens(editor.document, ranges);
    if (request !== this.selectionRequest) return; // a newer selection is on its way
    this.selection =
      tokens === undefined ? undefined : { key: editor.document.uri.toString(), tokens };
    this.render();
  }

  private render(): void {
    const document = vscode.window.activeTextEditor?.document;
    if (document === undefined || !this.host.isPromptDocument(document)) {
      this.item.hide();
      return;
    }
    if (this.serverProblem !== undefined) {
      this.item.text = '$(circle-slash) promptls';
      this.item.tooltip = `promptls: ${this.serverProblem}. Click to restart the language server.`;
      this.item.command = 'promptls.restartServer';
      this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
      this.item.accessibilityInformation = { label: `promptls: ${this.serverProblem}` };
      this.item.show();
      return;
    }
    this.item.command = 'promptls.showLoadTree';
    const key = document.uri.toString();
    const status = this.byUri.get(key);
    if (status === undefined) {
      this.item.text = '$(sync~spin) promptls';
      this.item.tooltip = 'promptls: analysing this file';
      this.item.backgroundColor = undefined;
      this.item.accessibilityInformation = { label: 'promptls: analysing this file' };
      this.item.show();
      return;
    }
    const over =
      (status.budget !== null && status.tokens > status.budget) ||
      (status.loadBudget !== null && status.loadTokens > status.loadBudget);
    let text = `≈${formatTokens(status.tokens)}`;
    text += status.budget !== null ? ` / ${formatTokens(status.budget)} tok` : ' tok';
    if (status.loadBudget !== null) text += ` · load ≈${formatTokens(status.loadTokens)}`;
    if (this.selection?.key === key) text += ` · sel ≈${formatTokens(this.selection.tokens)} tok`;
    this.item.text = text;
    this.item.backgroundColor = over ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    this.item.tooltip = this.tooltip(status, over);
    this.item.accessibilityInformation = {
      label: `promptls: about ${formatTokens(status.tokens)} tokens` +
        (status.budget !== null ? ` of a budget of ${formatTokens(status.budget)}` : '') +
        (status.loadBudget !== null ? `, load cost about ${formatTokens(status.loadTokens)} tokens` : ''),
    };
    this.item.show();
  }

  private tooltip(status: StatusParams, over: boolean): vscode.MarkdownString {
    const rows: [string, string][] = [
      ['kind', status.kind],
      ['tokens', `≈${formatTokens(status.tokens)}${percent(status.tokens, status.budget)}`],
    ];
    if (status.rawTokens !== undefined) rows.push(['raw tokens', formatTokens(status.rawTokens)]);
    rows.push(['budget', status.budget !== null ? formatTokens(status.budget) : 'none']);
    rows.push(['load tokens', `≈${formatTokens(status.loadTokens)}${percent(status.loadTokens, status.loadBudget)}`]);
    if (status.loadBudget !== null) rows.push(['load budget', formatTokens(status.loadBudget)]);
    rows.push(['files loaded', formatTokens(status.loadFiles)]);
    if (status.encoding !== undefined) rows.push(['encoding', status.encoding]);
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown(`**promptls**${over ? ' $(warning) over budget' : ''}\n\n`);
    md.appendMarkdown('| | |\n|---|---:|\n');
    for (const [name, value] of rows) md.appendMarkdown(`| ${name} | ${value.replace(/\|/g, '\\|')} |\n`);
    md.appendMarkdown('\nEstimates (tiktoken). Click for the load tree.');
    return md;
  }

  dispose(): void {
    if (this.selectionTimer !== undefined) clearTimeout(this.selectionTimer);
    for (const d of this.disposables) d.dispose();
  }
}
