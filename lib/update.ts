// `dispatch update`: compares the installed version with this project's own releases and says how
// to upgrade; it never upgrades by itself. Releases are the version tags (`v1.2.3`) of the git
// repository this copy was checked out from, read with `git ls-remote --tags` (nothing in the
// checkout changes). A copy that is not a git checkout (installed from a packed tarball) has no
// release source to ask, and update says so. The npm registry is never asked: the package named
// "projectdispatcher" there is another project.
import { git, GitError, isRepo } from './git.js';
import { UserError } from './errors.js';

/** How long the remote may take to list its tags. */
const LS_REMOTE_TIMEOUT_MS = 30_000;

export interface ReleaseSource {
  /** the checkout this copy runs from */
  root: string;
  /** the git remote releases are read from, and its URL */
  remote: string;
  url: string;
}

export type UpdateCheck =
  | { source: null; current: string }
  | { source: ReleaseSource; current: string; latest: string | null; newer: boolean; command: string | null };

/** Compares two semver strings by major.minor.patch; a prerelease sorts before its release. */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [core = '', pre = ''] = v.replace(/^v/, '').split('-', 2);
    return { nums: core.split('.').map((n) => parseInt(n, 10) || 0), pre };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) {
    const d = (x.nums[i] ?? 0) - (y.nums[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  if (x.pre === y.pre) return 0;
  if (!x.pre) return 1;
  if (!y.pre) return -1;
  return x.pre < y.pre ? -1 : 1;
}

/**
 * The remote a checkout takes its releases from: the upstream of the checked-out branch, else
 * `origin`, else its only remote. Null when `root` is not itself a git checkout (a folder inside
 * some other repository is not one); a UserError when it is one without a usable remote.
 */
export async function releaseSource(root: string): Promise<ReleaseSource | null> {
  if (!(await isRepo(root))) return null;
  const remotes = (await git(root, ['remote'])).split('\n').filter(Boolean);
  let remote: string | undefined;
  try {
    const branch = (await git(root, ['symbolic-ref', '--quiet', '--short', 'HEAD'])).trim();
    remote = (await git(root, ['config', '--get', `branch.${branch}.remote`])).trim();
  } catch (err) {
    if (!(err instanceof GitError)) throw err; // detached, or a branch without an upstream
  }
  if (!remote || !remotes.includes(remote)) remote = remotes.includes('origin') ? 'origin' : remotes.length === 1 ? remotes[0] : undefined;
  if (!remote) {
    throw new UserError(
      remotes.length === 0
        ? `${root} is a git checkout without a remote, so it has no releases to compare with; ` +
            'add the repository it came from ("git remote add origin <url>")'
        : `${root} has several git remotes (${remotes.join(', ')}) and none is "origin" or the branch's upstream; ` +
            "set the branch's upstream to the one releases come from",
    );
  }
  return { root, remote, url: (await git(root, ['remote', 'get-url', remote])).trim() };
}

/** The highest version among `refs/tags/v1.2.3` lines of `git ls-remote --tags`; prereleases only when `current` is one. */
export function latestTag(lsRemote: string, current: string): string | null {
  const includePre = current.includes('-');
  let latest: string | null = null;
  for (const line of lsRemote.split('\n')) {
    const m = /\trefs\/tags\/(v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)(?:\^\{\})?$/.exec(line);
    if (!m || (!includePre && m[1]!.includes('-'))) continue;
    if (!latest || compareVersions(m[1]!, latest) > 0) latest = m[1]!;
  }
  return latest;
}

const shellQuote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** Asks the checkout's remote for its version tags; a one-line UserError when the remote cannot be reached. */
export async function checkForUpdate(current: string, root: string): Promise<UpdateCheck> {
  const source = await releaseSource(root);
  if (!source) return { source: null, current };
  let listing: string;
  try {
    listing = await git(root, ['ls-remote', '--tags', source.remote], { timeoutMs: LS_REMOTE_TIMEOUT_MS });
  } catch (err) {
    if (!(err instanceof GitError)) throw err;
    const reason =
      err.stderr
        .split('\n')
        .map((l) => l.replace(/^(fatal|error): /, '').trim())
        .find(Boolean) ?? err.message;
    throw new UserError(`cannot read the releases of ${source.url} (remote "${source.remote}" of ${root}): ${reason}; are you offline?`);
  }
  const latest = latestTag(listing, current);
  const newer = latest !== null && compareVersions(latest, current) > 0;
  const steps = [
    `cd ${shellQuote(root)}`,
    `git fetch --tags ${shellQuote(source.remote)}`,
    `git checkout ${latest}`,
    'npm install',
    'npm run build',
  ];
  const command = newer ? [...steps, 'dispatch daemon restart'].join(' && ') : null;
  return { source, current, latest, newer, command };
}
