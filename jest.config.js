/** Jest runs the TypeScript sources directly (ts-jest, ESM); tests that start the daemon use the tsc build in dist/. */
export default {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  roots: ['<rootDir>/__tests__'],
  testMatch: ['**/*.test.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: { isolatedModules: true, types: ['node', 'jest'] } }],
  },
  testTimeout: 60000,
  setupFiles: ['<rootDir>/__tests__/helpers/setup.ts'],
  // refuses to run when dist/ is older than the sources (tests that start the daemon run dist/)
  globalSetup: '<rootDir>/__tests__/helpers/globalSetup.js',
  globalTeardown: '<rootDir>/__tests__/helpers/teardown.js',
  maxWorkers: 2,
};
