// Jest's node environment, plus: once a test file is done (after its last afterAll, when its
// daemons are stopped), stops the redis-server helpers/queue.ts started for it on the redis run.
import { TestEnvironment } from 'jest-environment-node';

export default class DispatchEnvironment extends TestEnvironment {
  async teardown() {
    const redis = this.global.__dispatchTestRedis;
    if (redis) await redis.stop();
    await super.teardown();
  }
}
