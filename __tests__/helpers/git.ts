// Real git repositories for tests. Each repository sets its own user.name/email, and the global
// and system git config are switched off for this process (and every git it starts, including
// the code under test), so no test depends on the machine's git setup.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

process.env.GIT_CONFIG_NOSYSTEM = '1';
process.env.GIT_CONFIG_GLOBAL = path.join(path.sep, 'nonexistent', 'pd-test-gitconfig');

export function sh(dir: string, args: string[]): string {
  return execFileSync('git', ['-C', dir, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, GIT_TERMINAL_PROMPT: '0' },
  });
}

/** Turns `dir` into a repository on `branch`, with one commit (a README) unless `empty`. */
export function initRepo(dir: string, opts: { branch?: string; empty?: boolean } = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  sh(dir, ['init', '-q', '-b', opts.branch ?? 'main']);
  sh(dir, ['config', 'user.name', 'Test User']);
  sh(dir, ['config', 'user.email', 'test@example.invalid']);
  sh(dir, ['config', 'commit.gpgsign', 'false']);
  if (!opts.empty) commitFile(dir, 'README.md', '# project\n', 'initial commit');
}

export function commitFile(dir: string, file: string, content: string, message: string): string {
  fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
  fs.writeFileSync(path.join(dir, file), content);
  sh(dir, ['add', '--', file]);
  sh(dir, ['commit', '-q', '-m', message]);
  return sh(dir, ['rev-parse', 'HEAD']).trim();
}

export function head(dir: string, ref = 'HEAD'): string {
  return sh(dir, ['rev-parse', ref]).trim();
}

export function porcelain(dir: string): string {
  return sh(dir, ['status', '--porcelain', '--untracked-files=all']);
}

export function mergeHeadExists(dir: string): boolean {
  return fs.existsSync(path.join(dir, '.git', 'MERGE_HEAD'));
}

export function branches(dir: string): string[] {
  return sh(dir, ['for-each-ref', '--format=%(refname:short)', 'refs/heads/']).split('\n').filter(Boolean).sort();
}

export function worktreePaths(dir: string): string[] {
  return sh(dir, ['worktree', 'list', '--porcelain'])
    .split('\n')
    .filter((l) => l.startsWith('worktree '))
    .map((l) => l.slice('worktree '.length));
}
