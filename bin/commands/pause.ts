// `dispatch pause [--stop-running]` and `dispatch resume`: the global agent pause, kept by the
// daemon in its database so it survives a restart.
import type { CommandModule } from 'yargs';
import type { PauseState } from '../../lib/pausing.js';
import { api } from './client.js';
import { printJson, say, when } from './output.js';

export const pauseCommand: CommandModule<{ json: boolean }, { json: boolean; 'stop-running': boolean }> = {
  command: 'pause',
  describe: 'pause all agents: no new run starts anywhere; --stop-running also stops the running ones',
  builder: (y) =>
    y.option('stop-running', {
      type: 'boolean',
      default: false,
      describe: 'also stop every running agent (their tickets stay in their columns)',
    }),
  handler: async (argv) => {
    const state = await api<PauseState>('POST', '/api/pause', { stop_running: argv['stop-running'] });
    if (argv.json) return printJson(state);
    const agents = (n: number) => `${n} running agent${n === 1 ? '' : 's'}`;
    const running = argv['stop-running']
      ? `; stopped ${agents(state.stopped)}`
      : state.running
        ? `; ${agents(state.running)} finish their work`
        : '';
    say(`all agents paused since ${when(state.paused?.since ?? null)}${running}; "dispatch resume" starts them again`);
  },
};

export const resumeCommand: CommandModule<object, { json: boolean }> = {
  command: 'resume',
  describe: 'end the global pause; waiting tickets start at once',
  handler: async (argv) => {
    const state = await api<PauseState>('POST', '/api/resume', {});
    if (argv.json) return printJson(state);
    say('agents resumed');
  },
};
