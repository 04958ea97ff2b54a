// Printing for the CLI: `--json` prints the API's data as is (JSON escapes every control
// character); otherwise aligned plain tables and lines, with every text made safe for a terminal.
// Titles, bodies, comments, transcripts and errors come from users and agents (untrusted): an
// escape sequence in them could retitle the terminal (OSC 0), write the clipboard (OSC 52), clear
// the screen or recolour what follows, and a bidi override could make text read other than it is.

/** Terminal escape sequences removed whole: CSI (`ESC [` or C1 CSI, to its final byte) and OSC (`ESC ]` or C1 OSC, to BEL or ST). */
const ESCAPE_SEQUENCES = /(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)/g;
/** C0 controls but tab and newline, DEL, C1 controls, and the bidi embeddings, overrides and isolates. */
const UNSAFE_CHARACTERS = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text as a terminal may show it: escape sequences and control characters removed, line breaks
 * (CR LF, a lone CR) turned into newlines; with `oneLine`, newlines and tabs become spaces.
 */
export function terminalSafe(text: string, opts: { oneLine?: boolean } = {}): string {
  let safe = text.replace(ESCAPE_SEQUENCES, '').replace(/\r\n?/g, '\n');
  if (opts.oneLine) safe = safe.replace(/[\n\t]+/g, ' ');
  return safe.replace(UNSAFE_CHARACTERS, '');
}

/** Prints human-readable text (one or more lines) made safe for a terminal. */
export function say(text: string): void {
  process.stdout.write(terminalSafe(text) + '\n');
}

/**
 * JSON text with DEL, the C1 controls and the bidi marks above written as \u escapes. JSON.stringify
 * escapes only C0 controls; these can stand only inside strings, so the value parses the same.
 */
export function jsonSafe(json: string): string {
  return json.replace(/[\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function printJson(value: unknown): void {
  process.stdout.write(jsonSafe(JSON.stringify(value, null, 2)) + '\n');
}

export function printTable(rows: Record<string, unknown>[], columns: string[]): void {
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const cells = rows.map((r) => columns.map((c) => terminalSafe(String(r[c] ?? ''), { oneLine: true }).replace(/\s+/g, ' ')));
  const widths = columns.map((c, i) => Math.min(60, Math.max(c.length, ...cells.map((row) => row[i]!.length))));
  const line = (values: string[]) =>
    values
      .map((v, i) => (v.length > widths[i]! ? v.slice(0, widths[i]! - 1) + '…' : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  process.stdout.write(line(columns.map((c) => c.toUpperCase())) + '\n');
  for (const row of cells) process.stdout.write(line(row) + '\n');
}

export function when(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '';
}

/**
 * A progress indicator on stderr while waiting: a spinner on a terminal, a line every 5 s
 * otherwise (logs and CI). `done()` clears the spinner line.
 */
export function waitingIndicator(label: string): { tick(elapsedMs: number): void; done(): void } {
  const tty = process.stderr.isTTY;
  let frame = 0;
  let lastLine = -1;
  return {
    tick(elapsedMs) {
      const seconds = Math.floor(elapsedMs / 1000);
      if (tty) process.stderr.write(`\r${'|/-\\'[frame++ % 4]} ${label} (${seconds} s)`);
      else if (Math.floor(seconds / 5) !== lastLine) {
        lastLine = Math.floor(seconds / 5);
        process.stderr.write(`${label} (${seconds} s)\n`);
      }
    },
    done() {
      if (tty && frame > 0) process.stderr.write('\r\x1b[K');
    },
  };
}
