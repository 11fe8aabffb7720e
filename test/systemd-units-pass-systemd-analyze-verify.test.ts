import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SMCD_BIN } from './helpers/process-server.ts';
import { SHELL_AGENT, scratchDir, which } from './helpers/shell-agent.ts';

const DEPLOY = fileURLToPath(new URL('../deploy/systemd/', import.meta.url));
const UNITS = ['smcd.service', 'smcd-agent-heartbeat.service', 'smcd-agent-heartbeat.timer'];

/** The directives of a unit file as `Key=value` lines, comments and sections left out. */
function directives(file: string): string[] {
  return readFileSync(join(DEPLOY, file), 'utf8')
    .split('\n')
    .filter((l) => /^[A-Za-z]+=/.test(l));
}

/** Why systemd-analyze cannot run here, or undefined. Under CI its absence is a failure, not a skip. */
function verifySkip(): string | undefined {
  if (which('systemd-analyze') && existsSync('/usr/lib/systemd/system')) return undefined;
  if (process.env.CI) throw new Error('CI: systemd-analyze and /usr/lib/systemd/system are required');
  return 'systemd-analyze is not available here';
}

describe('deploy/systemd units', () => {
  it('smcd.service has every hardening directive, and no MemoryDenyWriteExecute (V8 needs W+X memory)', () => {
    const lines = directives('smcd.service');
    for (const line of [
      'ExecStart=/usr/bin/smcd serve',
      'DynamicUser=yes',
      'StateDirectory=smcd',
      'Environment=SMCD_DATA_DIR=/var/lib/smcd',
      'EnvironmentFile=-/etc/smcd/smcd.env',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'PrivateDevices=yes',
      'NoNewPrivileges=yes',
      'ProtectKernelTunables=yes',
      'ProtectKernelModules=yes',
      'ProtectKernelLogs=yes',
      'ProtectControlGroups=yes',
      'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
      'RestrictNamespaces=yes',
      'LockPersonality=yes',
      'SystemCallArchitectures=native',
      'CapabilityBoundingSet=',
      'UMask=0077',
      'Restart=on-failure',
      'KillSignal=SIGTERM',
      'TimeoutStopSec=30',
    ]) {
      assert.ok(lines.includes(line), `smcd.service has ${line}`);
    }
    assert.equal(
      lines.find((l) => l.startsWith('MemoryDenyWriteExecute=')),
      undefined,
      'V8 JIT-compiles into writable, executable memory',
    );
    // smcd reloads its TLS pair on HUP (and ignores it without TLS), so a reload sends one.
    assert.equal(
      lines.find((l) => l.startsWith('ExecReload=')),
      'ExecReload=/bin/kill -HUP $MAINPID',
    );
  });

  it('smcd.env.example names every SMCD_* variable of `smcd serve` and README Configuration, all commented out', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const config = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## Command line'));
    const help = spawnSync(process.execPath, [SMCD_BIN, 'serve', '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0, help.stderr);
    const documented = new Set([...(config.match(/SMCD_[A-Z_]+[A-Z]/g) ?? []), ...(help.stdout.match(/SMCD_[A-Z_]+[A-Z]/g) ?? [])]);
    assert.ok(documented.size >= 19, `README Configuration and serve --help name ${documented.size} variables`);
    const example = readFileSync(join(DEPLOY, 'smcd.env.example'), 'utf8');
    for (const name of documented) assert.match(example, new RegExp(`^#${name}=`, 'm'), `${name} in smcd.env.example`);
    assert.deepEqual(
      example.split('\n').filter((l) => l !== '' && !l.startsWith('#')),
      [],
      'nothing set',
    );
    for (const secret of ['SMCD_MASTER_KEY', 'SMCD_ROOT_ACCESS_KEY_SECRET'])
      assert.match(example, new RegExp(`SECRET[^\\n]*\\n(#[^\\n]*\\n)*#${secret}=`), `${secret} marked SECRET`);
  });

  const notRoot = process.getuid?.() === 0 ? undefined : 'the agent installs units only as root';
  it('the shipped heartbeat service and timer are byte for byte what `smcd-agent.sh install` writes as root', { skip: notRoot }, () => {
    const root = scratchDir('units-install-');
    mkdirSync(join(root, 'run/systemd/system'), { recursive: true });
    mkdirSync(join(root, 'fake-bin'));
    writeFileSync(join(root, 'fake-bin/systemctl'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const env: NodeJS.ProcessEnv = { PATH: `${join(root, 'fake-bin')}:/usr/bin:/bin`, SMCD_INSTALL_ROOT: root, HOME: root };
    const r = spawnSync('/bin/sh', [SHELL_AGENT, 'install'], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    // Without a state file: the default state directory and HeartbeatRate (30 s).
    for (const unit of ['smcd-agent-heartbeat.service', 'smcd-agent-heartbeat.timer']) {
      assert.equal(readFileSync(join(DEPLOY, unit), 'utf8'), readFileSync(join(root, 'etc/systemd/system', unit), 'utf8'), unit);
    }
  });

  it('systemd-analyze verify finds no error and no warning in any of the units', { skip: verifySkip() }, () => {
    const root = scratchDir('units-root-');
    const unitDir = join(root, 'etc/systemd/system');
    mkdirSync(unitDir, { recursive: true });
    mkdirSync(join(root, 'usr/lib'), { recursive: true });
    // systemd's own units (network-online.target, timers.target, ...) visible in the root.
    symlinkSync('/usr/lib/systemd', join(root, 'usr/lib/systemd'));
    for (const unit of UNITS) copyFileSync(join(DEPLOY, unit), join(unitDir, unit));
    // verify checks that each ExecStart binary exists and is executable in the root.
    for (const bin of ['usr/bin/smcd', 'usr/local/sbin/smcd-agent', 'bin/kill']) {
      mkdirSync(join(root, bin, '..'), { recursive: true });
      writeFileSync(join(root, bin), '#!/bin/sh\n');
      chmodSync(join(root, bin), 0o755);
    }
    const r = spawnSync('systemd-analyze', ['verify', `--root=${root}`, ...UNITS.map((u) => `/etc/systemd/system/${u}`)], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    // Unknown keys and bad values are only warnings: none may name our units. (The root's
    // symlinks into the host's systemd produce noise about other units.)
    const ours = r.stderr.split('\n').filter((l) => UNITS.some((u) => l.includes(u)) || l.includes('smcd-agent-heartbeat'));
    assert.deepEqual(ours, [], 'systemd-analyze verify warns about our units');
  });
});
