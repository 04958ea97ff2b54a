// `dispatch update` compares with this project's own releases: the version tags of the git remote
// of the checkout it runs from. The install here is a real copy of the build with its own git
// checkout, whose remote is a local bare repository holding version tags (no network); and the
// same copy without .git, as a packed tarball installs it, which has no release source at all.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { compareVersions, latestTag } from '../lib/update.js';
import { daemonEnv, repoRoot } from './helpers/daemon.js';
import { tempDir } from './helpers/home.js';
import { commitFile, initRepo, sh } from './helpers/git.js';

const roots: string[] = [];
const scratch = () => {
  const root = tempDir('pd-update-');
  roots.push(root);
  return root;
};
afterAll(() => {
  for (const root of roots) fs.rmSync(root, { recursive: true, force: true }); // the node_modules link goes, not what it points at
});

const installed = (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

/** A copy of the built package (what package.json's `files` ships, package.json, node_modules linked) in `dir`. */
function installCopy(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { files: string[] };
  for (const entry of pkg.files) fs.cpSync(path.join(repoRoot, entry), path.join(dir, entry), { recursive: true });
  fs.copyFileSync(path.join(repoRoot, 'package.json'), path.join(dir, 'package.json'));
  fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(dir, 'node_modules'));
  return path.join(dir, 'dist', 'bin', 'dispatch.js');
}

/** A bare repository with one commit carrying each of `tags` (lightweight, and annotated for names starting with "a:"). */
function releaseRepo(root: string, tags: string[]): string {
  const bare = path.join(root, 'releases.git');
  sh(root, ['init', '-q', '--bare', bare]);
  const work = path.join(root, 'release-work');
  initRepo(work);
  for (const tag of tags) {
    const [annotated, name] = tag.startsWith('a:') ? [true, tag.slice(2)] : [false, tag];
    commitFile(work, 'VERSION', `${name}\n`, `release ${name}`);
    sh(work, annotated ? ['tag', '-a', '-m', `release ${name}`, name] : ['tag', name]);
  }
  sh(work, ['push', '-q', bare, 'main', '--tags']);
  return bare;
}

/** A copy installed as a git checkout whose `origin` is `remote`. */
function checkoutInstall(root: string, remote: string): { bin: string; dir: string } {
  const dir = path.join(root, 'projectdispatcher');
  const bin = installCopy(dir);
  initRepo(dir);
  sh(dir, ['remote', 'add', 'origin', remote]);
  return { bin, dir };
}

function update(bin: string, root: string): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, 'update'], { env: daemonEnv(root), encoding: 'utf8', timeout: 60_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test("a newer version tag on the checkout's remote: says so and prints the upgrade command", () => {
  const root = scratch();
  const bare = releaseRepo(root, ['v0.0.9', `v${installed}`, 'nightly', 'a:v99.1.0', 'v99.0.5', 'v100.0.0-beta.1']);
  const { bin, dir } = checkoutInstall(root, bare);
  const r = update(bin, root);
  expect(r).toMatchObject({ status: 0, stderr: '' });
  expect(r.stdout).toBe(
    `projectdispatcher v99.1.0 is available on ${bare} (installed: ${installed}). Upgrade with:\n` +
      `  cd ${dir} && git fetch --tags origin && git checkout v99.1.0 && npm install && npm run build && dispatch daemon restart\n`,
  );
  // only read: the checkout fetched nothing
  expect(sh(dir, ['tag'])).toBe('');
});

test('the installed version is the newest tag: up to date; a remote without version tags: says so', () => {
  const root = scratch();
  const current = checkoutInstall(root, releaseRepo(root, ['v0.0.1', `v${installed}`]));
  const r = update(current.bin, root);
  expect(r).toMatchObject({ status: 0, stderr: '' });
  const releases = path.join(root, 'releases.git');
  expect(r.stdout).toBe(`projectdispatcher ${installed} is up to date (latest release: v${installed} on ${releases})\n`);

  const other = scratch();
  const untagged = checkoutInstall(other, releaseRepo(other, ['nightly']));
  const none = update(untagged.bin, other);
  expect(none).toMatchObject({ status: 0, stderr: '' });
  const untaggedReleases = path.join(other, 'releases.git');
  expect(none.stdout).toBe(`projectdispatcher ${installed}: ${untaggedReleases} (remote "origin") has no release tags (v1.2.3) yet\n`);
});

test('a remote that cannot be reached, or no remote at all: one clear line, exit 1', () => {
  const root = scratch();
  const gone = path.join(root, 'moved-away.git');
  const { bin, dir } = checkoutInstall(root, gone);
  const r = update(bin, root);
  expect(r.status).toBe(1);
  expect(r.stdout).toBe('');
  const unreachable = new RegExp(
    `^dispatch: cannot read the releases of ${gone} \\(remote "origin" of ${dir}\\): .*${gone}.*; are you offline\\?\\n$`,
  );
  expect(r.stderr).toMatch(unreachable);

  sh(dir, ['remote', 'remove', 'origin']);
  const bare = update(bin, root);
  expect(bare.status).toBe(1);
  expect(bare.stderr).toBe(
    `dispatch: ${dir} is a git checkout without a remote, so it has no releases to compare with; add the repository it came from ("git remote add origin <url>")\n`,
  );
});

test('an install that is not a git checkout has no release source, also inside some other repository', () => {
  const root = scratch();
  const outer = path.join(root, 'dotfiles');
  initRepo(outer);
  // what `npm install -g` of a packed tarball leaves: the package's files, no .git, here under a prefix that is itself in a repository
  const dir = path.join(outer, 'lib', 'node_modules', 'projectdispatcher');
  const bin = installCopy(dir);
  const r = update(bin, root);
  expect(r).toMatchObject({ status: 0, stderr: '' });
  expect(r.stdout).toBe(
    `projectdispatcher ${installed} at ${dir} is not a git checkout, so it has no release source to compare with. ` +
      'To upgrade, install the newer version the way this one was installed (README, "Quick start").\n',
  );
});

test('version order and tag parsing', () => {
  expect(compareVersions('0.10.0', '0.9.9')).toBe(1);
  expect(compareVersions('1.0.0', '1.0.0')).toBe(0);
  expect(compareVersions('1.0.0-beta.1', '1.0.0')).toBe(-1);
  expect(compareVersions('0.1.0', '0.2.0')).toBe(-1);
  const listing = [
    'a\trefs/tags/v1.2.0',
    'b\trefs/tags/v1.10.0^{}',
    'c\trefs/tags/2.0.0-rc.1',
    'd\trefs/tags/release-3',
    'e\trefs/heads/v9.9.9',
  ].join('\n');
  expect(latestTag(listing, '1.0.0')).toBe('v1.10.0');
  expect(latestTag(listing, '2.0.0-beta.1')).toBe('2.0.0-rc.1');
  expect(latestTag('', '1.0.0')).toBeNull();
});
