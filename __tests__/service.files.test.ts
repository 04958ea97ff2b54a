// The generated systemd unit and LaunchAgent plist, and the exact command lines for each action.
import { homeInServiceFile, launchAgentPlist, serviceCommand, serviceFilePath, systemdUnit, type ServiceSpec } from '../lib/service.js';

const spec: ServiceSpec = {
  nodePath: '/opt/node 20/bin/node',
  daemonScript: '/usr/lib/node_modules/projectdispatcher/dist/bin/daemon.js',
  home: '/home/ana/Development/.tasks',
  pathEnv: '/home/ana/.local/bin:/usr/bin:/bin',
};

test('the systemd unit runs the absolute node on daemon.js, restarts on failure, and never kills agents on stop', () => {
  const unit = systemdUnit(spec);
  const lines = unit.split('\n');
  expect(lines).toContain('[Service]');
  expect(lines).toContain('ExecStart="/opt/node 20/bin/node" "--no-memory-reducer" "/usr/lib/node_modules/projectdispatcher/dist/bin/daemon.js"');
  expect(lines).toContain('Environment="DISPATCH_HOME=/home/ana/Development/.tasks"');
  expect(lines).toContain('Environment="PATH=/home/ana/.local/bin:/usr/bin:/bin"');
  expect(lines).toContain('Restart=on-failure');
  expect(lines).toContain('KillMode=process');
  expect(lines).toContain('WantedBy=default.target');
  expect(homeInServiceFile(unit)).toBe(spec.home);
});

test('systemd specials in paths are escaped, and the home reads back unchanged', () => {
  const odd = { ...spec, home: '/tmp/a "quoted" 100%/$HOME\\x', nodePath: '/n/$PATH/node%i' };
  const unit = systemdUnit(odd);
  expect(unit).toContain('ExecStart="/n/$$PATH/node%%i"');
  expect(unit).toContain('Environment="DISPATCH_HOME=/tmp/a \\"quoted\\" 100%%/$HOME\\\\x"');
  expect(homeInServiceFile(unit)).toBe(odd.home);
});

test('the LaunchAgent keeps the daemon alive after a crash only, with the home and PATH set', () => {
  const plist = launchAgentPlist({ ...spec, home: '/Users/ana/R&D <data>' });
  expect(plist).toMatch(/<key>Label<\/key>\s*<string>com\.projectdispatcher\.daemon<\/string>/);
  expect(plist).toMatch(/<key>ProgramArguments<\/key>\s*<array>\s*<string>\/opt\/node 20\/bin\/node<\/string>\s*<string>--no-memory-reducer<\/string>\s*<string>\/usr\/lib\/node_modules\/projectdispatcher\/dist\/bin\/daemon\.js<\/string>\s*<\/array>/);
  expect(plist).toMatch(/<key>KeepAlive<\/key>\s*<dict>\s*<key>SuccessfulExit<\/key>\s*<false\/>\s*<\/dict>/);
  expect(plist).toMatch(/<key>RunAtLoad<\/key>\s*<true\/>/);
  expect(plist).toContain('<string>/Users/ana/R&amp;D &lt;data&gt;</string>');
  expect(plist).toMatch(/<key>PATH<\/key>\s*<string>\/home\/ana\/\.local\/bin:\/usr\/bin:\/bin<\/string>/);
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
  expect(serviceCommand('systemd', 'mainPid', o)).toEqual(['systemctl', '--user', 'show', '--property', 'MainPID', '--value', 'projectdispatcher.service']);
  expect(serviceCommand('launchd', 'enable', o)).toEqual(['launchctl', 'bootstrap', 'gui/501', o.file]);
  expect(serviceCommand('launchd', 'start', o)).toEqual(['launchctl', 'kickstart', 'gui/501/com.projectdispatcher.daemon']);
  expect(serviceCommand('launchd', 'restart', o)).toEqual(['launchctl', 'kickstart', '-k', 'gui/501/com.projectdispatcher.daemon']);
  expect(serviceCommand('launchd', 'disable', o)).toEqual(['launchctl', 'bootout', 'gui/501/com.projectdispatcher.daemon']);
  expect(serviceCommand('launchd', 'reload', o)).toBeNull();
});
