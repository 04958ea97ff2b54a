// Printing for the CLI: `--json` prints the API's data as is; otherwise aligned plain tables.

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function printTable(rows: Record<string, unknown>[], columns: string[]): void {
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const cells = rows.map((r) => columns.map((c) => String(r[c] ?? '').replace(/\s+/g, ' ')));
  const widths = columns.map((c, i) => Math.min(60, Math.max(c.length, ...cells.map((row) => row[i]!.length))));
  const line = (values: string[]) => values.map((v, i) => (v.length > widths[i]! ? v.slice(0, widths[i]! - 1) + '…' : v.padEnd(widths[i]!))).join('  ').trimEnd();
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
