// The generated systemd unit and LaunchAgent plist, and the exact command lines for each action.
import {
  daemonEnvironment,
  homeInServiceFile,
  launchAgentPlist,
  serviceCommand,
  serviceFilePath,
  systemdUnit,
  type ServiceSpec,
} from '../lib/service.js';

const SECRET = 'pd-secret-7f3a9c';
/** The installing user's shell: what the daemon needs, and credentials it must not keep. */
const shellEnv: NodeJS.ProcessEnv = {
  HOME: '/home/ana',
  USER: 'ana',
  PATH: '/home/ana/.local/bin:/usr/bin:/bin',
  LANG: 'de_DE.UTF-8',
  LC_TIME: 'C',
  AWS_SECRET_ACCESS_KEY: SECRET,
  ANTHROPIC_API_KEY: `sk-${SECRET}`,
  SSH_AUTH_SOCK: '/tmp/ssh-agent.sock',
  XDG_RUNTIME_DIR: '/run/user/1000',
  DISPATCH_HOME: '/somewhere/else',
};
const home = '/home/ana/Development/.tasks';
const spec: ServiceSpec = {
  nodePath: '/opt/node 20/bin/node',
  daemonScript: '/usr/lib/node_modules/projectdispatcher/dist/bin/daemon.js',
  home,
  env: daemonEnvironment(shellEnv, home),
};

test("the daemon's environment keeps only what it and its agents use, never the caller's credentials", () => {
  expect(spec.env).toEqual({
    DISPATCH_HOME: home,
    HOME: '/home/ana',
    LANG: 'de_DE.UTF-8',
    LC_TIME: 'C',
    PATH: '/home/ana/.local/bin:/usr/bin:/bin',
    USER: 'ana',
  });
  expect(daemonEnvironment({}, home)).toMatchObject({ DISPATCH_HOME: home, PATH: '/usr/local/bin:/usr/bin:/bin' });
});

test('the systemd unit runs the absolute node on daemon.js through env -i, restarts on failure, and never kills agents on stop', () => {
  const unit = systemdUnit(spec);
  const lines = unit.split('\n');
  expect(lines).toContain('[Service]');
  // the user manager's own environment (whatever a desktop session imported) never reaches the daemon
  expect(lines).toContain(
    'ExecStart="/usr/bin/env" "-i" "DISPATCH_HOME=/home/ana/Development/.tasks" "HOME=/home/ana" "LANG=de_DE.UTF-8" "LC_TIME=C" ' +
      '"PATH=/home/ana/.local/bin:/usr/bin:/bin" "USER=ana" "/opt/node 20/bin/node" "--no-memory-reducer" "/usr/lib/node_modules/projectdispatcher/dist/bin/daemon.js"',
  );
  expect(unit).not.toMatch(/^Environment/m);
  expect(unit).not.toContain(SECRET);
  expect(unit).not.toMatch(/SSH_AUTH_SOCK|XDG_RUNTIME_DIR|\/somewhere\/else/);
  expect(lines).toContain('Restart=on-failure');
  expect(lines).toContain('KillMode=process');
  expect(lines).toContain('WantedBy=default.target');
  expect(homeInServiceFile(unit)).toBe(spec.home);
});

test('systemd specials in paths are escaped, and the home reads back unchanged', () => {
  const odd = { ...spec, home: '/tmp/a "quoted" 100%/$HOME\\x', nodePath: '/n/$PATH/node%i' };
  const unit = systemdUnit(odd);
  expect(unit).toContain(' "/n/$$PATH/node%%i" ');
  expect(unit).toContain(' "DISPATCH_HOME=/tmp/a \\"quoted\\" 100%%/$$HOME\\\\x" ');
  expect(homeInServiceFile(unit)).toBe(odd.home);
});

test('service files written by earlier versions still name their home', () => {
  expect(homeInServiceFile('[Service]\nExecStart="/usr/bin/node" "/d.js"\nEnvironment="DISPATCH_HOME=/h/100%%"\n')).toBe('/h/100%');
  expect(homeInServiceFile('<key>EnvironmentVariables</key>\n<dict>\n<key>DISPATCH_HOME</key>\n<string>/Users/a/R&amp;D</string>')).toBe(
    '/Users/a/R&D',
  );
});

test('the LaunchAgent keeps the daemon alive after a crash only, with the home and PATH set through env -i', () => {
  const plist = launchAgentPlist({ ...spec, home: '/Users/ana/R&D <data>' });
  expect(plist).toMatch(/<key>Label<\/key>\s*<string>com\.projectdispatcher\.daemon<\/string>/);
  expect(plist).toMatch(
    /<key>ProgramArguments<\/key>\s*<array>\s*<string>\/usr\/bin\/env<\/string>\s*<string>-i<\/string>\s*<string>DISPATCH_HOME=\/Users\/ana\/R&amp;D &lt;data&gt;<\/string>(\s*<string>[A-Z_]+=[^<]*<\/string>)+\s*<string>\/opt\/node 20\/bin\/node<\/string>\s*<string>--no-memory-reducer<\/string>\s*<string>\/usr\/lib\/node_modules\/projectdispatcher\/dist\/bin\/daemon\.js<\/string>\s*<\/array>/,
  );
  expect(plist).not.toContain(SECRET);
  expect(plist).not.toContain('EnvironmentVariables');
  expect(plist).toMatch(/<key>KeepAlive<\/key>\s*<dict>\s*<key>SuccessfulExit<\/key>\s*<false\/>\s*<\/dict>/);
  expect(plist).toMatch(/<key>RunAtLoad<\/key>\s*<true\/>/);
  expect(plist).toContain('<string>PATH=/home/ana/.local/bin:/usr/bin:/bin</string>');
  expect(homeInServiceFile(plist)).toBe('/Users/ana/R&D <data>');
});

test('service files live where systemd and launchd look for them', () => {
  expect(serviceFilePath('systemd', '/home/ana')).toBe('/home/ana/.config/systemd/user/projectdispatcher.service');
  expect(serviceFilePath('launchd', '/Users/ana')).toBe('/Users/ana/Library/LaunchAgents/com.projectdispatcher.daemon.plist');
});

test('the exact command lines', () => {
  const o = { uid: 501, file: '/Users/ana/Library/LaunchAgents/com.projectdispatcher.daemon.plist' };
  expect(serviceCommand('systemd', 'probe', o)).toEqual(['systemctl', '--user', 'show-environment']);
  expect(serviceCommand('systemd', 'reload', o)).toEqual(['systemctl', '--user', 'daemon-reload']);
  expect(serviceCommand('systemd', 'enableNow', o)).toEqual(['systemctl', '--user', 'enable', '--now', 'projectdispatcher.service']);
  expect(serviceCommand('systemd', 'disable', o)).toEqual(['systemctl', '--user', 'disable', '--now', 'projectdispatcher.service']);
  expect(serviceCommand('systemd', 'mainPid', o)).toEqual([
    'systemctl',
    '--user',
    'show',
    '--property',
    'MainPID',
    '--value',
    'projectdispatcher.service',
  ]);
  expect(serviceCommand('launchd', 'enable', o)).toEqual(['launchctl', 'bootstrap', 'gui/501', o.file]);
  expect(serviceCommand('launchd', 'start', o)).toEqual(['launchctl', 'kickstart', 'gui/501/com.projectdispatcher.daemon']);
  expect(serviceCommand('launchd', 'restart', o)).toEqual(['launchctl', 'kickstart', '-k', 'gui/501/com.projectdispatcher.daemon']);
  expect(serviceCommand('launchd', 'disable', o)).toEqual(['launchctl', 'bootout', 'gui/501/com.projectdispatcher.daemon']);
  expect(serviceCommand('launchd', 'reload', o)).toBeNull();
});
