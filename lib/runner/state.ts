// What a runner keeps in its folder so that nothing is lost when it stops, however it stops:
// `<dir>/runs/<run-id>.json` for each run it took (its agent's pid and start time, how much of the
// transcript the daemon has acknowledged, and, once the agent ended, the end report not yet
// delivered), next to the run's transcript `<run-id>.log`. Each file is replaced whole (written
// aside, then renamed), so a kill leaves the old version or the new one, never half of one.
import fs from 'node:fs';
import path from 'node:path';
import type { EndReport } from './protocol.js';

export interface RunState {
  run_id: string;
  ticket_key: string;
  /** the project's clone and the branch to push: enough to finish the run after a restart */
  repo: string;
  branch: string;
  pid: number | null;
  proc_start: string | null;
  /** bytes of the transcript the daemon has acknowledged */
  acked: number;
  /** set when the agent ended: the report to deliver */
  end: EndReport | null;
}

export class RunnerState {
  readonly runsDir: string;

  constructor(readonly dir: string) {
    this.runsDir = path.join(dir, 'runs');
    fs.mkdirSync(this.runsDir, { recursive: true, mode: 0o700 });
  }

  private file(runId: string): string {
    if (!/^[\w-]+$/.test(runId)) throw new Error(`not a run id: ${JSON.stringify(runId)}`);
    return path.join(this.runsDir, `${runId}.json`);
  }

  transcriptPath(runId: string): string {
    return this.file(runId).replace(/\.json$/, '.log');
  }

  promptPath(runId: string): string {
    return this.file(runId).replace(/\.json$/, '.prompt.md');
  }

  save(s: RunState): void {
    const file = this.file(s.run_id);
    const tmp = `${file}.tmp`;
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(s));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  }

  /** Every run recorded, oldest first; unreadable files are skipped (and named in `bad`). */
  list(bad: (file: string, why: string) => void = () => {}): RunState[] {
    const out: { s: RunState; mtime: number }[] = [];
    for (const name of fs.readdirSync(this.runsDir)) {
      if (!name.endsWith('.json')) continue;
      const file = path.join(this.runsDir, name);
      try {
        const s = JSON.parse(fs.readFileSync(file, 'utf8')) as RunState;
        if (typeof s.run_id !== 'string' || typeof s.acked !== 'number') throw new Error('not a run state');
        out.push({ s, mtime: fs.statSync(file).mtimeMs });
      } catch (err) {
        bad(file, (err as Error).message);
      }
    }
    return out.sort((a, b) => a.mtime - b.mtime).map((e) => e.s);
  }

  /** Forgets a run: its state, transcript and prompt file. */
  remove(runId: string): void {
    for (const f of [this.file(runId), this.transcriptPath(runId), this.promptPath(runId)]) fs.rmSync(f, { force: true });
  }
}

/**
 * The bytes of the transcript from `offset` on, at most `max`. `wholeLines` (while the agent still
 * writes): only up to the last complete line, unless one line is longer than `max`. A cut never
 * splits a UTF-8 character, so the daemon's byte offsets and ours agree.
 */
export function transcriptPiece(file: string, offset: number, max: number, wholeLines: boolean): { offset: number; data: string } | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const buf = Buffer.alloc(Math.max(0, Math.min(max, fs.fstatSync(fd).size - offset)));
    const n = buf.length ? fs.readSync(fd, buf, 0, buf.length, offset) : 0;
    const full = n === max; // more may follow
    let end = n;
    if (wholeLines || full) {
      const newline = n > 0 ? buf.lastIndexOf(0x0a, n - 1) : -1;
      if (newline >= 0) end = newline + 1;
      else if (wholeLines && !full) end = 0;
    }
    if (end === n && full) end = characterStart(buf, end);
    return end > 0 ? { offset, data: buf.toString('utf8', 0, end) } : null;
  } finally {
    fs.closeSync(fd);
  }
}

/** `end`, moved back to the start of a character the buffer holds only part of. */
function characterStart(buf: Buffer, end: number): number {
  let i = end - 1;
  while (i > 0 && (buf[i]! & 0xc0) === 0x80) i--;
  const lead = buf[i]!;
  const length = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return i + length > end ? i : end;
}
