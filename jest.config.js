/** Jest runs the TypeScript sources directly (ts-jest, ESM); tests that start the daemon use the tsc build in dist/. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const testsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '__tests__');

/**
 * The redis run (DISPATCH_TEST_QUEUE=redis, see helpers/queue.ts) takes the files whose daemons run
 * agents, merges or notifications: they start the engine daemon (startEngineDaemon) or prepare a home
 * for `dispatch daemon start` (useTestQueue). The rest never queue a job: domain and parsing code,
 * pages, API and CLI over data the test wrote, served by the plain daemon (startTestDaemon, no agent
 * binary); they run once. These stay on sqlite: they choose their backends themselves, or read
 * liteque's own table.
 */
const SQLITE_ONLY = {
  'queue.contract.test.ts': 'runs its contract on both backends itself',
  'engine.redis.test.ts': 'starts its daemons on the backends it names',
  'engine.core.test.ts': 'drives the pools on liteque with an injected clock, without a daemon',
  'queues.housekeeping.test.ts': "ages jobs by editing liteque's tasks table",
  'web.queues.test.ts': "builds the inspector's jobs in liteque's tasks table",
  'runners.load.test.ts':
    "runners reach the queue only through the daemon's agent-run jobs, which runners.e2e and runners.faults run on redis; 50 tickets again there take minutes and prove nothing more",
};
const STARTS_A_QUEUE = /\b(startEngineDaemon|useTestQueue)\(/;

function redisFiles() {
  return fs
    .readdirSync(testsDir)
    .filter((f) => f.endsWith('.test.ts') && !(f in SQLITE_ONLY))
    .filter((f) => STARTS_A_QUEUE.test(fs.readFileSync(path.join(testsDir, f), 'utf8')))
    .map((f) => `<rootDir>/__tests__/${f}`);
}

/** One backend's run; helpers/environment.js hands `queue` to the helpers as DISPATCH_TEST_QUEUE. */
function run(queue) {
  return {
    preset: 'ts-jest/presets/default-esm',
    testEnvironment: '<rootDir>/__tests__/helpers/environment.js',
    testEnvironmentOptions: { queue },
    roots: ['<rootDir>/__tests__'],
    testMatch: queue === 'redis' ? redisFiles() : ['**/*.test.ts'],
    moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
    transform: {
      '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: { isolatedModules: true, types: ['node', 'jest'] } }],
    },
    setupFiles: ['<rootDir>/__tests__/helpers/setup.ts'],
  };
}

const global = {
  testTimeout: 60000,
  // refuses to run when dist/ is older than the sources (tests that start the daemon run dist/)
  globalSetup: '<rootDir>/__tests__/helpers/globalSetup.js',
  globalTeardown: '<rootDir>/__tests__/helpers/teardown.js',
  // the tests spend most of their time waiting on child processes: a worker per core, at least 2
  maxWorkers: Math.max(2, os.availableParallelism()),
};

// DISPATCH_TEST_QUEUE: sqlite (the default), redis, or both (`npm test`: one jest run of two projects
// sharing its workers, so neither backend's slowest file waits for the other run to end)
const queue = process.env.DISPATCH_TEST_QUEUE || 'sqlite';
if (!['sqlite', 'redis', 'both'].includes(queue)) throw new Error(`DISPATCH_TEST_QUEUE must be sqlite, redis or both, not ${queue}`);

export default queue === 'both'
  ? { ...global, projects: ['sqlite', 'redis'].map((q) => ({ ...run(q), displayName: q })) }
  : { ...global, ...run(queue) };
