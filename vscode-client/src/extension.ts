// promptls for VS Code: starts the promptls language server and shows what it reports. Thin on
// purpose: every count, budget and check comes from the server.
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
  TransportKind,
} from 'vscode-languageclient/node';

import { isServerCommand, resolveServerCommand } from './python';
import {
  type PromptFilter,
  isPromptDocument,
  kindGlobs,
  projectKindGlobs,
  promptSelector,
} from './selector';
import { explicitSettings, isServerSection, serverSettingKeys } from './settings';
import { type StatusParams, StatusBar, formatTokens } from './status';
import { Dashboard } from './dashboard';

const STATUS = 'promptls/status';
const STATS = 'promptls/stats';
const LOAD_TREE = 'promptls/loadTree';
const COUNT_TOKENS = 'promptls/countTokens';
const COMPRESS_KIND = vscode.CodeActionKind.Source.append('compressXml').append('promptls');
const TREE_SCHEME = 'promptls-tree';

interface LoadTreeResult {
  uri: string;
  text: string;
  files: number;
  loadTokens: number;
}

/** Read-only documents showing load trees (`promptls-tree:` URIs). */
class TreeDocuments implements vscode.TextDocumentContentProvider {
  private readonly contents = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  set(uri: vscode.Uri, text: string): void {
    this.contents.set(uri.toString(), text);
    this.changed.fire(uri);
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.contents.get(uri.toString()) ?? '';
  }

  dispose(): void {
    this.changed.dispose();
  }
}

class Extension implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private selector: PromptFilter[] = promptSelector();
  /** The `[kinds]` globs of the `.promptls.toml` files the selector was made from (JSON). */
  private projectGlobs = '[]';
  private readonly log: vscode.LogOutputChannel;
  private readonly statsChannel: vscode.OutputChannel;
  private readonly status: StatusBar;
  private readonly trees = new TreeDocuments();
  private readonly settingKeys: string[];
  private readonly disposables: { dispose(): unknown }[] = [];
  private readonly dashboard = new Dashboard(() => this.client);
  private starting: Promise<void> | undefined;
  private warnedNoPython = false;

  constructor(private readonly context: vscode.ExtensionContext) {
    this.log = vscode.window.createOutputChannel('promptls', { log: true });
    this.statsChannel = vscode.window.createOutputChannel('promptls statistics');
    this.settingKeys = serverSettingKeys(context.extension.packageJSON);
    this.status = new StatusBar({
      isPromptDocument: (document) => isPromptDocument(this.selector, document),
      countTokens: (document, ranges) => this.countTokens(document, ranges),
    });
    this.disposables.push(
      this.log,
      this.statsChannel,
      this.status,
      this.trees,
      vscode.workspace.registerTextDocumentContentProvider(TREE_SCHEME, this.trees),
      vscode.commands.registerCommand('promptls.showLoadTree', (uri?: unknown) => this.showLoadTree(uri)),
      vscode.commands.registerCommand('promptls.showStats', () => this.showStats()),
      vscode.commands.registerCommand('promptls.restartServer', () => this.restart()),
      vscode.commands.registerCommand('promptls.compressFile', (uri?: unknown) => this.compressFile(uri)),
      this.dashboard,
      vscode.commands.registerCommand('promptls.showDashboard', () => this.dashboard.show()),
      // Its `[kinds]` decide which documents the client hands the server: taken again on a change.
      this.watchProjectFiles(),
      vscode.window.onDidChangeActiveTextEditor((editor) => {
        this.setContext(editor);
      }),
      vscode.workspace.onDidChangeConfiguration((event) => {
        if (
          event.affectsConfiguration('promptls.server') ||
          event.affectsConfiguration('promptls.kinds')
        ) {
          this.log.info('server settings changed: restarting the language server');
          void this.restart();
        } else if (event.affectsConfiguration('promptls') && this.client?.isRunning() === true) {
          // the server pulls `workspace/configuration` (section promptls) when told of a change
          void this.client.sendNotification(DidChangeConfigurationNotification.type, { settings: null });
        }
      }),
    );
    this.setContext(vscode.window.activeTextEditor);
  }

  private watchProjectFiles(): vscode.Disposable {
    const watcher = vscode.workspace.createFileSystemWatcher('**/.promptls.toml');
    const changed = async (): Promise<void> => {
      if (JSON.stringify(await projectKindGlobs()) === this.projectGlobs) return;
      this.log.info('.promptls.toml kinds changed: restarting the language server');
      void this.restart();
    };
    watcher.onDidCreate(changed);
    watcher.onDidChange(changed);
    watcher.onDidDelete(changed);
    return watcher;
  }

  private setContext(editor: vscode.TextEditor | undefined): void {
    void vscode.commands.executeCommand(
      'setContext',
      'promptls.isPromptFile',
      isPromptDocument(this.selector, editor?.document),
    );
  }

  /** Start the language server (resolving which Python runs it). */
  start(): Promise<void> {
    this.starting ??= this.doStart().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    const kinds = vscode.workspace.getConfiguration('promptls').get<unknown>('kinds');
    const project = await projectKindGlobs();
    this.projectGlobs = JSON.stringify(project);
    this.selector = promptSelector([...kindGlobs(kinds), ...project]);
    this.setContext(vscode.window.activeTextEditor);
    const resolved = await resolveServerCommand(this.context.extensionPath, this.log);
    if (!isServerCommand(resolved)) {
      this.log.error(`no usable Python: ${resolved.tried.join('; ')}`);
      this.status.setServerProblem('no usable Python 3.11+ for the language server');
      this.notifyNoPython(resolved.tried, resolved.explicit);
      return;
    }
    this.log.info(`starting ${[resolved.command, ...resolved.args].join(' ')} (${resolved.origin})`);
    const serverOptions: ServerOptions = {
      command: resolved.command,
      args: resolved.args,
      transport: TransportKind.stdio,
      options: { env: resolved.env },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: this.selector,
      outputChannel: this.log,
      middleware: {
        workspace: {
          configuration: (params, token, next) => {
            if (!params.items.some((item) => isServerSection(item.section))) {
              return next(params, token);
            }
            return params.items.map((item) =>
              isServerSection(item.section)
                ? explicitSettings(
                    this.settingKeys,
                    item.scopeUri === undefined ? undefined : vscode.Uri.parse(item.scopeUri),
                  )
                : null,
            );
          },
        },
      },
    };
    const client = new LanguageClient('promptls', 'promptls', serverOptions, clientOptions);
    this.client = client;
    client.onNotification(STATUS, (params: StatusParams) => {
      this.status.update(client.protocol2CodeConverter.asUri(params.uri), params);
      this.dashboard.refreshSoon();
    });
    client.onDidChangeState((event) => {
      if (event.newState === State.Stopped) {
        this.status.reset();
        if (this.client === client) this.status.setServerProblem('the language server stopped');
      } else if (event.newState === State.Running) {
        this.status.setServerProblem(undefined);
      }
    });
    try {
      await client.start();
    } catch (error) {
      this.status.setServerProblem('the language server did not start');
      this.log.error(`the language server did not start: ${String(error)}`);
      void vscode.window.showErrorMessage(
        `promptls: the language server did not start (${String(error)}). See the promptls output.`,
      );
      return;
    }
  }

  /** ONE notification per start attempt, not one per file. */
  private notifyNoPython(tried: string[], explicit: boolean): void {
    if (this.warnedNoPython) return;
    this.warnedNoPython = true;
    const reason = tried[tried.length - 1] ?? 'no Python found';
    const fix = explicit
      ? 'Point "promptls.server.pythonPath" to a Python 3.11+ interpreter'
      : 'Set "promptls.server.pythonPath" to a Python 3.11+ interpreter';
    void vscode.window
      .showWarningMessage(
        `promptls: the language server cannot start: ${reason}. ${fix} ` +
          '(or "promptls.server.command" to a promptls you installed); it starts as soon as you do.',
        'Open Settings',
        'Show Log',
      )
      .then((choice) => {
        if (choice === 'Open Settings') {
          void vscode.commands.executeCommand('workbench.action.openSettings', 'promptls.server.pythonPath');
        } else if (choice === 'Show Log') {
          this.log.show();
        }
      });
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client === undefined) return;
    try {
      if (client.isRunning()) await client.stop(5000);
    } catch (error) {
      this.log.warn(`stopping the language server: ${String(error)}`);
    }
    await client.dispose().catch(() => undefined);
  }

  async restart(): Promise<void> {
    await this.starting;
    await this.stop();
    this.status.reset();
    this.status.setServerProblem(undefined);
    this.warnedNoPython = false;
    await this.start();
  }

  /** The running client, or undefined after telling the user it is not running. */
  private runningClient(): LanguageClient | undefined {
    const client = this.client;
    if (client?.isRunning() !== true) {
      void vscode.window.showWarningMessage('promptls: the language server is not running.');
      return undefined;
    }
    return client;
  }

  private async countTokens(
    document: vscode.TextDocument,
    ranges: readonly vscode.Range[],
  ): Promise<number | undefined> {
    const client = this.client;
    if (client?.isRunning() !== true) return undefined;
    const uri = client.code2ProtocolConverter.asUri(document.uri);
    try {
      const counts = await Promise.all(
        ranges.slice(0, 100).map((range) =>
          client.sendRequest<{ tokens: number } | null>(COUNT_TOKENS, {
            uri,
            range: client.code2ProtocolConverter.asRange(range),
          }),
        ),
      );
      return counts.reduce((sum, result) => sum + (result?.tokens ?? 0), 0);
    } catch (error) {
      this.log.debug(`countTokens: ${String(error)}`);
      return undefined;
    }
  }

  private targetUri(arg: unknown): vscode.Uri | undefined {
    if (arg instanceof vscode.Uri) return arg;
    if (typeof arg === 'string' && arg !== '') return vscode.Uri.parse(arg);
    if (Array.isArray(arg)) return this.targetUri(arg[0]);
    return vscode.window.activeTextEditor?.document.uri;
  }

  /** `promptls.showLoadTree [uri]`: the load tree (as `promptls graph` prints it) beside the file. */
  async showLoadTree(arg?: unknown): Promise<void> {
    const uri = this.targetUri(arg);
    if (uri === undefined) {
      void vscode.window.showInformationMessage('promptls: open a prompt file to see its load tree.');
      return;
    }
    const client = this.runningClient();
    if (client === undefined) return;
    const result = await client.sendRequest<LoadTreeResult | null>(LOAD_TREE, {
      uri: client.code2ProtocolConverter.asUri(uri),
    });
    if (result === null) {
      void vscode.window.showInformationMessage(
        `promptls: ${vscode.workspace.asRelativePath(uri)} is not a prompt file promptls indexes.`,
      );
      return;
    }
    const name = vscode.workspace.asRelativePath(uri);
    const header =
      `Load tree of ${name}: ${formatTokens(result.files)} file${result.files === 1 ? '' : 's'}, ` +
      `≈${formatTokens(result.loadTokens)} tokens\n\n`;
    const treeUri = vscode.Uri.from({ scheme: TREE_SCHEME, path: `/${name} (load tree)` });
    this.trees.set(treeUri, header + result.text + '\n');
    const document = await vscode.workspace.openTextDocument(treeUri);
    await vscode.window.showTextDocument(document, {
      preview: true,
      preserveFocus: false,
      viewColumn: vscode.ViewColumn.Beside,
    });
  }

  /** `promptls.showStats`: the server's counters as JSON in an output channel. */
  async showStats(): Promise<void> {
    const client = this.runningClient();
    if (client === undefined) return;
    const stats = await client.sendRequest<unknown>(STATS, {});
    this.statsChannel.clear();
    this.statsChannel.appendLine(`promptls/stats at ${new Date().toISOString()}`);
    this.statsChannel.appendLine(JSON.stringify(stats, null, 2));
    this.statsChannel.show(true);
  }

  /** `promptls.compressFile [uri]`: apply the server's `source.compressXml.promptls` action. */
  async compressFile(arg?: unknown): Promise<void> {
    const uri = this.targetUri(arg);
    if (uri === undefined) {
      void vscode.window.showInformationMessage('promptls: open a prompt file to compress it.');
      return;
    }
    if (this.runningClient() === undefined) return;
    const document = await vscode.workspace.openTextDocument(uri);
    const range = new vscode.Range(document.positionAt(0), document.positionAt(document.getText().length));
    // the 4th argument resolves the first action (fills in its edit when the server defers it)
    const actions =
      (await vscode.commands.executeCommand<(vscode.CodeAction | vscode.Command)[] | undefined>(
        'vscode.executeCodeActionProvider',
        uri,
        range,
        COMPRESS_KIND.value,
        1,
      )) ?? [];
    const action = actions.find((a): a is vscode.CodeAction => {
      if (typeof (a as vscode.Command).command === 'string') return false; // a bare Command
      const kind = (a as vscode.CodeAction).kind;
      return kind !== undefined && COMPRESS_KIND.contains(kind);
    });
    const name = vscode.workspace.asRelativePath(uri);
    if (action === undefined || (action.edit === undefined && action.command === undefined)) {
      void vscode.window.showInformationMessage(`promptls: nothing to compress in ${name}.`);
      return;
    }
    if (action.edit !== undefined && !(await vscode.workspace.applyEdit(action.edit))) {
      void vscode.window.showWarningMessage(`promptls: could not apply "${action.title}" to ${name}.`);
      return;
    }
    if (action.command !== undefined) {
      const args = (action.command.arguments ?? []) as unknown[];
      await vscode.commands.executeCommand(action.command.command, ...args);
    }
    vscode.window.setStatusBarMessage(`promptls: ${action.title}`, 5000);
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}

let extension: Extension | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  extension = new Extension(context);
  context.subscriptions.push(extension);
  await extension.start();
}

export async function deactivate(): Promise<void> {
  await extension?.stop();
  extension = undefined;
}
