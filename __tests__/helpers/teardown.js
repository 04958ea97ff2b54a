// Jest global teardown: no test may leave an agent behind. Kills any fake agent of this checkout
// that is still running (a test that failed half-way can leave one hanging) and says so.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const fake = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'fake-claude.cjs');

export default function teardown() {
  const left = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(fake)) left.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  for (const pid of left) {
    // agents lead their own process group: take the children they forked along
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
  if (left.length) console.warn(`\nglobal teardown: killed ${left.length} fake agent(s) a test left running: ${left.join(', ')}`);
}
