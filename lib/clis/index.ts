// The agent CLIs an agent type can run (docs/agents/): each adapter says how to start its CLI headless,
// how an agent type's tools and permission mode map onto the CLI's own flags (and what cannot), which
// environment it needs, how to read its JSON event stream into the common transcript model
// (lib/transcript.ts) and which failures are a usage limit, a rate limit, a login or a setup problem.
import type { Config } from '../config.js';
import type { Classified } from '../runCause.js';
import type { TranscriptEnd, TranscriptEntry } from '../transcript.js';
import { claude } from './claude.js';
import { codex } from './codex.js';
import { gemini } from './gemini.js';
import { opencode } from './opencode.js';

export const CLI_NAMES = ['claude', 'codex', 'gemini', 'opencode'] as const;
export type CliName = (typeof CLI_NAMES)[number];

export interface LaunchInput {
  model: string;
  permissionMode: string;
  allowedTools: string[];
  /** the agent type's prompt, as a file (for a CLI that reads one) and as text */
  promptFile: string;
  prompt: string;
  /** the task message of this run */
  task: string;
  /** the folder of the daemon's database, which the ticket tool writes (a sandboxed CLI must allow it) */
  dataDir: string;
}

export interface Launch {
  args: string[];
  stdin: string;
  /** variables this CLI needs besides the common ones (its permission settings, for one) */
  env: Record<string, string>;
}

export interface CliAdapter {
  name: CliName;
  label: string;
  /** the binary looked up on PATH unless `clis.<name>.binary` says otherwise */
  defaultBinary: string;
  /** the models offered in the agent-type editor; the first is the default */
  models: readonly string[];
  /** what a valid model name looks like for this CLI, and how to say so */
  modelPattern: RegExp;
  modelHint: string;
  /** variables the agent inherits from the daemon for this CLI: its API key and config folders */
  inheritedEnv: readonly string[];
  /** where a login problem is fixed, in the pause banner's words */
  authFix: string;
  launch(input: LaunchInput): Launch;
  /** what of the agent type's permissions this CLI cannot honour, in a user's words (empty: all of it) */
  unmapped(input: { permissionMode: string; allowedTools: string[] }): string[];
  /** the entries of transcript lines, in order (a parser may carry state from line to line) */
  parse(lines: readonly string[]): TranscriptEntry[];
  /** the final result and limit state, from the transcript's last lines */
  end(lines: readonly string[]): TranscriptEnd;
  /** the cause of a failed run */
  classify(end: TranscriptEnd, now: number, exitCode: number | null): Classified;
}

/** Built on first use: the adapters import lib/transcript.ts, which imports this module, so none may be read while modules load. */
let registry: Record<CliName, CliAdapter> | null = null;
const adapters = (): Record<CliName, CliAdapter> => (registry ??= { claude, codex, gemini, opencode });

export function isCliName(v: unknown): v is CliName {
  return typeof v === 'string' && (CLI_NAMES as readonly string[]).includes(v);
}

/** The adapter of a CLI; an unknown name (a row written by a newer version) reads as claude. */
export function cliAdapter(name: string | null | undefined): CliAdapter {
  return isCliName(name) ? adapters()[name] : adapters().claude;
}

export function allAdapters(): CliAdapter[] {
  return CLI_NAMES.map((n) => adapters()[n]);
}

/** The binary a CLI runs as: `clis.<name>.binary`, and for claude `claude_binary` unless that is set. */
export function cliBinary(config: Config, name: CliName): string {
  const own = config.clis[name].binary;
  if (name === 'claude') return own ?? config.claude_binary;
  return own ?? adapters()[name].defaultBinary;
}

/** The setting a user changes to point at a CLI's binary (for error messages and pauses). */
export function binarySetting(name: CliName): string {
  return name === 'claude' ? 'claude_binary' : `clis.${name}.binary`;
}

/** The task message after the agent type's prompt, for a CLI that takes both as one input. */
export function promptThenTask(prompt: string, task: string): string {
  return `${prompt.trimEnd()}\n\n---\n\n${task}`;
}

/** An HTTP status named in an error message ("last status: 429", "unexpected status 401", "code":403). */
export function statusIn(text: string): number | null {
  const m = /(?:status|"code")["\s:=]*(\d{3})\b/i.exec(text);
  return m ? Number(m[1]) : null;
}
