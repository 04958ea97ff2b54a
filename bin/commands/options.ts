// Checks shared by the CLI's numeric options: yargs turns "abc" into NaN and takes "-5" as a
// number, so every count or duration goes through `wholeNumber`, and a bad value is refused with
// one line (bin/dispatch.ts prints yargs' errors) instead of reaching a handler.
export function wholeNumber(option: string, min = 1): (value: unknown) => number {
  return (value) => {
    const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < min) {
      const given = typeof value === 'number' && !Number.isNaN(value) ? `, not ${value}` : '';
      throw new Error(`--${option} takes a whole number of ${min} or more${given}`);
    }
    return n;
  };
}
