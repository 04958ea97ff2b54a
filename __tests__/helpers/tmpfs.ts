// A small tmpfs to fill up: how the full-disk tests get a disk that runs out of space without
// touching the machine's real disks. Mounting needs root (this sandbox) or passwordless sudo (CI
// runners); elsewhere `tmpfsPrefix` is null and those tests are skipped.
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tempDir } from './home.js';

function probe(): string[] | null {
  const dir = tempDir('pd-mount-probe-');
  try {
    for (const prefix of [[], ['sudo', '-n']]) {
      const [cmd, ...rest] = [...prefix, 'mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir];
      if (spawnSync(cmd!, rest).status === 0) {
        spawnSync(prefix[0] ?? 'umount', prefix.length ? [...prefix.slice(1), 'umount', dir] : [dir]);
        return prefix;
      }
    }
    return null;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The command prefix that may mount ([] as root, ['sudo', '-n']), or null when none may. */
export const tmpfsPrefix = probe();

function run(argv: string[]): void {
  const [cmd, ...rest] = [...(tmpfsPrefix ?? []), ...argv];
  const r = spawnSync(cmd!, rest, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
}

export function mountTmpfs(dir: string, size: string): void {
  fs.mkdirSync(dir, { recursive: true });
  run(['mount', '-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
}

export function unmountTmpfs(dir: string): void {
  const [cmd, ...rest] = [...(tmpfsPrefix ?? []), 'umount', dir];
  spawnSync(cmd!, rest);
}

/** Writes `file` until the disk is full: big chunks, then small ones down to the last page. */
export function fillDisk(file: string): void {
  const fd = fs.openSync(file, 'w');
  try {
    for (const size of [1 << 20, 4096]) {
      const chunk = Buffer.alloc(size, 120);
      for (;;) {
        try {
          fs.writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          break;
        }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}
