// Jest's node environment, plus the queue backend of the run: the project's testEnvironmentOptions.queue
// (jest.config.js) becomes DISPATCH_TEST_QUEUE for the helpers (helpers/queue.ts). Once a test file is
// done (after its last afterAll, when its daemons are stopped), stops the redis-server they started for it.
import { TestEnvironment } from 'jest-environment-node';

export default class DispatchEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    const queue = config.projectConfig.testEnvironmentOptions?.queue;
    if (queue) this.global.process.env.DISPATCH_TEST_QUEUE = queue;
  }

  async teardown() {
    const redis = this.global.__dispatchTestRedis;
    if (redis) await redis.stop();
    await super.teardown();
  }
}
