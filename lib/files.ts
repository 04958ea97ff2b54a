// Whole-file writes for the data home's own files (config.json, prompts): written to a temp file
// beside the target, flushed, then renamed over it, so a reader sees the old file or the new one,
// never half of one. A write the disk refuses removes its temp file, leaves the target as it was,
// and becomes a StorageError (507 disk full, 503 otherwise) with a message the user can act on.
import fs from 'node:fs';
import { StorageError } from './db/connection.js';

export function writeFileAtomic(file: string, text: string, mode = 0o644): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    const fd = fs.openSync(tmp, 'w', mode);
    try {
      fs.writeFileSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw fileStorageError(err, file) ?? err;
  }
}

/** Names a write failure that comes from the disk (full, read-only, I/O error); null for anything else. */
function fileStorageError(err: unknown, file: string): StorageError | null {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new StorageError(507, `the disk holding ${file} is full: free some space and retry (nothing was saved)`);
  }
  if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM' || code === 'EIO') {
    const hint = "check the disk and the folder's permissions, then retry (nothing was saved)";
    return new StorageError(503, `${file} could not be written (${code}): ${hint}`);
  }
  return null;
}
