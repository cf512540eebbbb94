// Which documents are prompt files: the language client's document selector, also used to decide
// whether the status bar item shows.
import { parse } from 'smol-toml';
import * as vscode from 'vscode';

/** A document filter both VS Code and the language client accept. */
export interface PromptFilter {
  scheme: 'file';
  language?: string;
  pattern: string;
}

/** Globs of prompt files in any language the editor gives them (names say what they are). */
const NAMED_FILES = ['**/CLAUDE.md', '**/CLAUDE.local.md', '**/PROJECT_CONFIG.xml'];

/** Folders whose markdown (and XML) files are prompt files. */
const PROMPT_FOLDERS = ['**/.claude/**'];

/**
 * The document selector: markdown and XML files under `.claude/`, `components/**\/*.md`, the
 * memory files and `PROJECT_CONFIG.xml`, plus the globs of `promptls.kinds` (editor settings).
 */
export function promptSelector(extraGlobs: readonly string[] = []): PromptFilter[] {
  const selector: PromptFilter[] = [];
  for (const pattern of PROMPT_FOLDERS) {
    selector.push({ scheme: 'file', language: 'markdown', pattern });
    selector.push({ scheme: 'file', language: 'xml', pattern });
  }
  selector.push({ scheme: 'file', language: 'markdown', pattern: '**/components/**/*.md' });
  for (const pattern of [...NAMED_FILES, ...extraGlobs]) {
    selector.push({ scheme: 'file', pattern });
  }
  return selector;
}

/** The globs of the `promptls.kinds` setting, made to match at any depth like the server's. */
export function kindGlobs(kinds: unknown): string[] {
  if (typeof kinds !== 'object' || kinds === null) return [];
  const globs: string[] = [];
  for (const value of Object.values(kinds as Record<string, unknown>)) {
    if (!Array.isArray(value)) continue;
    for (const glob of value) {
      if (typeof glob === 'string' && glob.length > 0) {
        globs.push(glob.startsWith('**/') || glob.startsWith('/') ? glob : `**/${glob}`);
      }
    }
  }
  return globs;
}

/**
 * The globs of the `[kinds]` tables of the workspace folders' `.promptls.toml` (the server reads
 * the same files): a file mapped there is a prompt file to the editor too. A file that is missing
 * or not valid TOML gives none (the server reports what is wrong with it).
 */
export async function projectKindGlobs(
  folders: readonly vscode.WorkspaceFolder[] = vscode.workspace.workspaceFolders ?? [],
): Promise<string[]> {
  const globs: string[] = [];
  for (const folder of folders) {
    let text: string;
    try {
      const bytes = await vscode.workspace.fs.readFile(vscode.Uri.joinPath(folder.uri, '.promptls.toml'));
      text = new TextDecoder().decode(bytes);
    } catch {
      continue;
    }
    try {
      globs.push(...kindGlobs(parse(text).kinds));
    } catch {
      continue;
    }
  }
  return globs;
}

export function isPromptDocument(
  selector: vscode.DocumentSelector,
  document: vscode.TextDocument | undefined,
): boolean {
  return document !== undefined && vscode.languages.match(selector, document) > 0;
}
