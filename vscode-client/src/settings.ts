// The `promptls` settings the server pulls with `workspace/configuration`.
//
// The server merges editor settings over `.promptls.toml`, so the editor must send only what the
// user set: VS Code's `getConfiguration` fills in every contributed default, which would silently
// override the project file. The client's own settings (`server.*`, `trace.*`) stay here.
import * as vscode from 'vscode';

const SECTION = 'promptls';
const CLIENT_ONLY = ['promptls.server.', 'promptls.trace.'];

/** The keys of the server's settings, from the extension's contributed configuration. */
export function serverSettingKeys(packageJSON: unknown): string[] {
  const properties = (packageJSON as {
    contributes?: { configuration?: { properties?: Record<string, unknown> } };
  }).contributes?.configuration?.properties;
  return Object.keys(properties ?? {}).filter(
    (key) => key.startsWith(`${SECTION}.`) && !CLIENT_ONLY.some((prefix) => key.startsWith(prefix)),
  );
}

/** `{loadBudget: 30000, budgets: {command: 4000}}`: the settings set in user, workspace or folder
 * settings, nested the way the server reads them (camelCase keys). */
export function explicitSettings(keys: readonly string[], scope?: vscode.Uri): Record<string, unknown> {
  const config = vscode.workspace.getConfiguration(undefined, scope ?? null);
  const result: Record<string, unknown> = {};
  for (const key of keys) {
    const inspected = config.inspect(key);
    const value =
      inspected?.workspaceFolderValue ?? inspected?.workspaceValue ?? inspected?.globalValue;
    if (value === undefined) continue;
    const parts = key.slice(SECTION.length + 1).split('.');
    let node = result;
    for (const part of parts.slice(0, -1)) {
      const child = node[part];
      if (typeof child === 'object' && child !== null && !Array.isArray(child)) {
        node = child as Record<string, unknown>;
      } else {
        const created: Record<string, unknown> = {};
        node[part] = created;
        node = created;
      }
    }
    node[parts[parts.length - 1] ?? key] = value;
  }
  return result;
}

export function isServerSection(section: string | undefined): boolean {
  return section === SECTION;
}
