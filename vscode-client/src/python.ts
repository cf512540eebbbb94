// Which command runs the language server: `promptls.server.command`, else a Python 3.11+ (the
// `promptls.server.pythonPath` setting, the Python extension's interpreter, `python3` on PATH)
// running the server bundled with the extension (`bundled/`, on PYTHONPATH).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';

export interface ServerCommand {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** How it was chosen, for the log. */
  origin: string;
}

export interface NoServer {
  /** One sentence per interpreter tried. */
  tried: string[];
  /** The user set `promptls.server.pythonPath` and it is not usable. */
  explicit: boolean;
}

const MIN_VERSION: readonly [number, number] = [3, 11];
const CHECK_TIMEOUT_MS = 20_000;
const IMPORT_CHECK = 'import promptls.cli, pygls, lsprotocol, tiktoken, lxml.etree, yaml';

interface RunResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { env, timeout: CHECK_TIMEOUT_MS, windowsHide: true },
      (error, stdout, stderr) => {
        resolve({ ok: error === null, stdout, stderr: error && !stderr ? error.message : stderr });
      },
    );
  });
}

function expandHome(value: string): string {
  if (value === '~') return os.homedir();
  if (value.startsWith('~/')) return path.join(os.homedir(), value.slice(2));
  return value;
}

function expandWorkspace(value: string): string {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  return folder === undefined ? value : value.replace(/\$\{workspaceFolder\}/g, folder);
}

/** The Python extension's API, as far as we use it. */
interface PythonApi {
  environments?: {
    getActiveEnvironmentPath(resource?: vscode.Uri): { path: string } | undefined;
    resolveEnvironment?(
      env: { path: string } | string,
    ): Promise<{ executable: { uri?: vscode.Uri } } | undefined>;
  };
}

/** The active interpreter of `ms-python.python`, when that extension is installed. */
async function pythonExtensionInterpreter(log: vscode.LogOutputChannel): Promise<string | undefined> {
  const extension = vscode.extensions.getExtension<PythonApi>('ms-python.python');
  if (extension === undefined) return undefined;
  try {
    const api = extension.isActive ? extension.exports : await extension.activate();
    const environments = api.environments;
    if (environments === undefined) return undefined;
    const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
    const active = environments.getActiveEnvironmentPath(resource);
    if (active === undefined) return undefined;
    if (environments.resolveEnvironment !== undefined) {
      const resolved = await environments.resolveEnvironment(active);
      const executable = resolved?.executable.uri?.fsPath;
      if (executable !== undefined) return executable;
    }
    return active.path;
  } catch (error) {
    log.warn(`could not ask the Python extension for its interpreter: ${String(error)}`);
    return undefined;
  }
}

/** Whether `python` is 3.11+ and imports the server; a reason when it is not. */
async function checkPython(
  python: string,
  env: NodeJS.ProcessEnv,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const version = await run(python, ['-c', 'import sys; print(sys.version_info[:2])'], env);
  if (!version.ok) {
    return { ok: false, reason: `${python}: could not run it (${firstLine(version.stderr)})` };
  }
  const match = /\((\d+),\s*(\d+)\)/.exec(version.stdout);
  if (match === null) {
    return { ok: false, reason: `${python}: unexpected version output ${JSON.stringify(version.stdout)}` };
  }
  const found: [number, number] = [Number(match[1]), Number(match[2])];
  if (found[0] < MIN_VERSION[0] || (found[0] === MIN_VERSION[0] && found[1] < MIN_VERSION[1])) {
    return { ok: false, reason: `${python} is Python ${found.join('.')}; promptls needs ${MIN_VERSION.join('.')} or newer` };
  }
  const imports = await run(python, ['-c', IMPORT_CHECK], env);
  if (!imports.ok) {
    return {
      ok: false,
      reason: `${python} (Python ${found.join('.')}) cannot import the bundled server: ${lastLine(imports.stderr)}`,
    };
  }
  return { ok: true };
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}

/** The environment of the bundled server: `bundled/` first on PYTHONPATH. */
function bundledEnv(extensionPath: string): NodeJS.ProcessEnv {
  const bundled = path.join(extensionPath, 'bundled');
  const env = { ...process.env };
  if (fs.existsSync(bundled)) {
    env.PYTHONPATH = env.PYTHONPATH ? `${bundled}${path.delimiter}${env.PYTHONPATH}` : bundled;
  }
  return env;
}

/** The command that starts the server, or what was tried when no Python is usable. */
export async function resolveServerCommand(
  extensionPath: string,
  log: vscode.LogOutputChannel,
): Promise<ServerCommand | NoServer> {
  const config = vscode.workspace.getConfiguration('promptls.server');
  const command = config.get<unknown>('command');
  if (Array.isArray(command) && command.length > 0 && command.every((a) => typeof a === 'string')) {
    const argv = command.map((a) => expandWorkspace(expandHome(a)));
    const [program, ...args] = argv as [string, ...string[]];
    return { command: program, args, env: { ...process.env }, origin: 'promptls.server.command' };
  }

  const env = bundledEnv(extensionPath);
  const tried: string[] = [];
  const setting = config.get<string>('pythonPath', '').trim();
  const candidates: { python: string; origin: string }[] = [];
  if (setting !== '') {
    candidates.push({ python: expandWorkspace(expandHome(setting)), origin: 'promptls.server.pythonPath' });
  } else {
    const fromExtension = await pythonExtensionInterpreter(log);
    if (fromExtension !== undefined) {
      candidates.push({ python: fromExtension, origin: "the Python extension's interpreter" });
    }
    candidates.push({ python: 'python3', origin: 'python3 on PATH' });
  }
  for (const { python, origin } of candidates) {
    const check = await checkPython(python, env);
    if (check.ok) {
      return { command: python, args: ['-m', 'promptls', 'serve'], env, origin };
    }
    log.warn(check.reason);
    tried.push(check.reason);
  }
  return { tried, explicit: setting !== '' };
}

export function isServerCommand(value: ServerCommand | NoServer): value is ServerCommand {
  return 'command' in value;
}
