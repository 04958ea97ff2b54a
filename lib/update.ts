// `dispatch update`: compares the installed version with the registry's latest and says how to
// upgrade. It never upgrades by itself: the user runs the printed command, then restarts.
import { UserError } from './errors.js';

export const PACKAGE_NAME = 'projectdispatcher';
export const DEFAULT_REGISTRY = 'https://registry.npmjs.org';

export interface UpdateCheck {
  current: string;
  latest: string;
  newer: boolean;
  command: string;
}

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

/** Asks `<registry>/projectdispatcher/latest`; throws a one-line UserError when that fails. */
export async function checkForUpdate(current: string, registry = DEFAULT_REGISTRY, timeoutMs = 10_000): Promise<UpdateCheck> {
  const url = `${registry.replace(/\/+$/, '')}/${PACKAGE_NAME}/latest`;
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const reason = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new UserError(`cannot reach the package registry at ${registry} (${reason}); are you offline?`);
  }
  if (!res.ok) throw new UserError(`the package registry at ${registry} answered ${res.status} for ${PACKAGE_NAME}`);
  let latest: unknown;
  try {
    latest = ((await res.json()) as { version?: unknown }).version;
  } catch {
    latest = undefined;
  }
  if (typeof latest !== 'string' || !/^\d+\.\d+\.\d+/.test(latest)) throw new UserError(`the package registry at ${registry} gave no version for ${PACKAGE_NAME}`);
  const registryFlag = registry.replace(/\/+$/, '') === DEFAULT_REGISTRY ? '' : ` --registry ${registry}`;
  return {
    current,
    latest,
    newer: compareVersions(latest, current) > 0,
    command: `npm install -g ${PACKAGE_NAME}@${latest}${registryFlag} && dispatch daemon restart`,
  };
}
