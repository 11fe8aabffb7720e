import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';

import {
  type AgentRun,
  assertShell,
  fakeSchedulers,
  recordingPath,
  runAgent,
  SHELL_AGENT,
  type Shell,
  scratchDir,
  shell,
  shellSkip,
  which,
} from './helpers/shell-agent.ts';

const SECRET = 'Qx7pLm2Rt9Vb4Nc8Kd1Fg6Hj3Ws5Ya0Z';
const UNIT = 'etc/systemd/system/smcd-agent-heartbeat';

/** A state file as an import leaves it, in a directory of its own. */
function savedState(rate: number): { file: string; dir: string } {
  const dir = join(scratchDir('smcd-install-state-'), 'agent');
  mkdirSync(dir, { mode: 0o700 });
  const file = join(dir, 'state');
  writeFileSync(
    file,
    `endpoint=http://127.0.0.1:9\nsource_id=s-0123456789abcdefghij\nsource_key_id=sk-0123456789abcdefghij\nsource_key_secret=${SECRET}\nheartbeat_rate=${rate}\nmachine_id=m-1\n`,
    { mode: 0o600 },
  );
  writeFileSync(join(dir, 'machine-id'), 'abcdef0123456789abcdef0123456789\n', { mode: 0o600 });
  return { file, dir };
}

/** An install root whose PATH starts with fake systemctl/crontab, so nothing real is ever touched. */
function installRoot(layout: 'systemd' | 'cron.d' | 'none') {
  const root = scratchDir('smcd-install-root-');
  if (layout === 'systemd') mkdirSync(join(root, 'run/systemd/system'), { recursive: true });
  if (layout === 'cron.d') mkdirSync(join(root, 'etc/cron.d'), { recursive: true });
  return { root, fakes: fakeSchedulers(root) };
}

function allFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
}

function assertNoSecretUnder(...dirs: string[]) {
  for (const dir of dirs)
    for (const f of allFiles(dir)) assert.ok(!readFileSync(f, 'utf8').includes(SECRET), `the source key secret is still in ${f}`);
}

const log = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : '');

/** `systemd-analyze verify` on the units as installed, with systemd's own units visible in the root. */
function verifyUnits(root: string): string | undefined {
  if (!which('systemd-analyze') || !existsSync('/usr/lib/systemd/system')) return 'systemd-analyze is not available here';
  mkdirSync(join(root, 'usr/lib'), { recursive: true });
  if (!existsSync(join(root, 'usr/lib/systemd'))) symlinkSync('/usr/lib/systemd', join(root, 'usr/lib/systemd'));
  const r = spawnSync('systemd-analyze', ['verify', `--root=${root}`, `/${UNIT}.service`, `/${UNIT}.timer`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // Unknown keys and bad values are only warnings: none may name our units.
  const ours = r.stderr.split('\n').filter((l) => l.includes('smcd-agent'));
  assert.deepEqual(ours, [], 'systemd-analyze verify warns about the units');
  return undefined;
}

async function install(sh: Shell, args: string[], env: Record<string, string | undefined>): Promise<AgentRun> {
  return runAgent(sh, args, { env });
}

for (const sh of [shell('dash'), shell('busybox')]) {
  describe(`install and uninstall under ${sh.name}`, shellSkip(sh), () => {
    before(() => assertShell(sh));

    it('systemd: the agent in /usr/local/sbin, a hardened oneshot service and a timer at HeartbeatRate, enabled; uninstall removes all and the key', async () => {
      const { root, fakes } = installRoot('systemd');
      const state = savedState(45);
      const env = { SMCD_INSTALL_ROOT: root, SMCD_STATE_FILE: state.file, PATH: `${fakes.bin}:${sh.path}` };
      const run = await install(sh, ['install'], env);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stderr, '');
      assert.match(
        run.stdout,
        /Installed the agent as \/usr\/local\/sbin\/smcd-agent\.\nHeartbeats every 45 s by systemd: smcd-agent-heartbeat\.timer/,
      );

      const copy = join(root, 'usr/local/sbin/smcd-agent');
      assert.equal(readFileSync(copy, 'utf8'), readFileSync(SHELL_AGENT, 'utf8'), 'a copy of the script that ran');
      assert.equal(statSync(copy).mode & 0o777, 0o755);
      assert.equal(statSync(join(root, 'usr/local/sbin')).mode & 0o777, 0o755);

      const service = readFileSync(join(root, `${UNIT}.service`), 'utf8');
      assert.equal(statSync(join(root, `${UNIT}.service`)).mode & 0o777, 0o644);
      for (const line of [
        'Type=oneshot',
        'ExecStart=/usr/local/sbin/smcd-agent heartbeat',
        `Environment=SMCD_STATE_FILE=${state.file}`,
        'NoNewPrivileges=yes',
        'ProtectSystem=strict',
        `ReadWritePaths=-${state.dir}`,
        'PrivateTmp=yes',
        'ProtectHome=read-only',
        'PrivateDevices=yes',
        'CapabilityBoundingSet=',
        'UMask=0077',
      ]) {
        assert.ok(service.split('\n').includes(line), `service has ${line}`);
      }
      const timer = readFileSync(join(root, `${UNIT}.timer`), 'utf8').split('\n');
      for (const line of ['[Timer]', 'OnBootSec=45s', 'OnUnitActiveSec=45s', 'AccuracySec=1s', '[Install]', 'WantedBy=timers.target']) {
        assert.ok(timer.includes(line), `timer has ${line}`);
      }
      assert.equal(log(fakes.log), 'systemctl daemon-reload\nsystemctl enable --now smcd-agent-heartbeat.timer\n');
      assert.equal(existsSync(join(root, 'etc/cron.d/smcd-agent')), false);
      if (sh.name === 'dash') verifyUnits(root);

      // Leftovers of an interrupted write go too; the Node agent's copy of the same key as well.
      writeFileSync(`${state.file}.4242.tmp`, `source_key_secret=${SECRET}\n`);
      writeFileSync(join(state.dir, 'source.json'), JSON.stringify({ sourceKeySecret: SECRET }));
      const gone = await install(sh, ['uninstall'], env);
      assert.equal(gone.code, 0, gone.stderr);
      assert.equal(
        log(fakes.log).split('\n').slice(2).join('\n'),
        'systemctl disable --now smcd-agent-heartbeat.timer\nsystemctl daemon-reload\ncrontab -l\n',
        'and a look for an entry in the crontab',
      );
      for (const f of [copy, `${root}/${UNIT}.service`, `${root}/${UNIT}.timer`, state.file, join(state.dir, 'source.json')]) {
        assert.equal(existsSync(f), false, `${f} removed`);
      }
      assert.ok(existsSync(join(state.dir, 'machine-id')), 'the machine id stays: importing again reports the same machine');
      assertNoSecretUnder(root, state.dir);
      assert.match(gone.stdout, /Removed the source key .*no copy of it is left/);
      assert.match(gone.stdout, /Source s-0123456789abcdefghij still exists on the server: delete it there/);
    });

    it('cron.d: an entry every minute (a warning when the rate is under 20 s); uninstall removes it', async () => {
      const { root, fakes } = installRoot('cron.d');
      const state = savedState(15);
      const env = { SMCD_INSTALL_ROOT: root, SMCD_STATE_FILE: state.file, PATH: `${fakes.bin}:${sh.path}` };
      const run = await install(sh, ['install'], env);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /Heartbeats every minute by cron: \/etc\/cron\.d\/smcd-agent\./);
      assert.match(run.stderr, /the server asks for a heartbeat every 15 s, and cron beats once a minute/);
      const cron = readFileSync(join(root, 'etc/cron.d/smcd-agent'), 'utf8');
      assert.equal(statSync(join(root, 'etc/cron.d/smcd-agent')).mode & 0o777, 0o644);
      assert.ok(cron.split('\n').includes(`* * * * * root SMCD_STATE_FILE=${state.file} /usr/local/sbin/smcd-agent heartbeat >/dev/null 2>&1`), cron);
      assert.match(cron, /^PATH=\/usr\/local\/sbin:/m);
      assert.equal(log(fakes.log), '', 'neither systemctl nor crontab');
      assert.equal(existsSync(join(root, 'etc/systemd')), false);

      const gone = await install(sh, ['uninstall'], env);
      assert.equal(gone.code, 0, gone.stderr);
      assert.equal(existsSync(join(root, 'etc/cron.d/smcd-agent')), false);
      assert.equal(existsSync(join(root, 'usr/local/sbin/smcd-agent')), false);
      assertNoSecretUnder(root, state.dir);
    });

    it("the user's crontab when there is no cron.d: other entries kept, ours added once and removed", async () => {
      const { root, fakes } = installRoot('none');
      writeFileSync(fakes.table, '# backups\n0 3 * * * /usr/bin/backup --all\n');
      const state = savedState(30);
      const env = { SMCD_INSTALL_ROOT: root, SMCD_STATE_FILE: state.file, PATH: `${fakes.bin}:${sh.path}` };
      const ours = `* * * * * SMCD_STATE_FILE=${state.file} /usr/local/sbin/smcd-agent heartbeat >/dev/null 2>&1 # smcd-agent heartbeat`;
      for (let i = 0; i < 2; i++) {
        const run = await install(sh, ['install'], env);
        assert.equal(run.code, 0, run.stderr);
        assert.equal(run.stderr, '', 'a 30 s rate is fine for a per-minute cron (60 s < 3 x 30 s)');
      }
      assert.equal(readFileSync(fakes.table, 'utf8'), `# backups\n0 3 * * * /usr/bin/backup --all\n${ours}\n`);
      const gone = await install(sh, ['uninstall'], env);
      assert.equal(gone.code, 0, gone.stderr);
      assert.equal(readFileSync(fakes.table, 'utf8'), '# backups\n0 3 * * * /usr/bin/backup --all\n');
      assert.match(log(fakes.log), /^crontab -l\ncrontab -\n/);
    });

    it('no scheduler at all: says so and suggests heartbeat --loop, exit 1', async () => {
      const { root } = installRoot('none');
      const state = savedState(30);
      const tools = ['cat', 'chmod', 'mkdir', 'mv', 'rm', 'grep', 'id', 'openssl', 'sed', 'awk', 'od', 'tr', 'head', 'sort'];
      const path = recordingPath(sh, join(root, 'argv.log'), tools);
      const run = await install(sh, ['install'], { SMCD_INSTALL_ROOT: root, SMCD_STATE_FILE: state.file, PATH: path });
      assert.equal(run.code, 1);
      assert.match(
        run.stderr,
        /no scheduler found \(no systemd, no \/etc\/cron\.d, no crontab\): keep "\/usr\/local\/sbin\/smcd-agent heartbeat --loop" running/,
      );
    });

    it('uninstall refuses to call it done while a copy of the key is left behind', async () => {
      const { root, fakes } = installRoot('cron.d');
      const state = savedState(30);
      const env = { SMCD_INSTALL_ROOT: root, SMCD_STATE_FILE: state.file, PATH: `${fakes.bin}:${sh.path}` };
      assert.equal((await install(sh, ['install'], env)).code, 0);
      writeFileSync(join(state.dir, 'state.backup'), `source_key_secret=${SECRET}\n`);
      const run = await install(sh, ['uninstall'], env);
      assert.equal(run.code, 1);
      assert.ok(run.stderr.includes(`the source key is still in: ${join(state.dir, 'state.backup')}`), run.stderr);
      assert.ok(!run.stdout.includes(SECRET) && !run.stderr.includes(SECRET));
    });

    it('an import that fails installs nothing', async () => {
      const { root, fakes } = installRoot('cron.d');
      const state = savedState(30);
      const failed = await install(sh, ['import', '--endpoint', 'http://127.0.0.1:9'], {
        SMCD_INSTALL_ROOT: root,
        SMCD_STATE_FILE: state.file,
        SMCD_NO_INSTALL: undefined,
        SMCD_CODE_ID: 'at-aaaaaaaaaaaaaaaaaaaa',
        SMCD_CODE: 'x'.repeat(32),
        PATH: `${fakes.bin}:${sh.path}`,
      });
      assert.equal(failed.code, 1);
      assert.equal(existsSync(join(root, 'etc/cron.d/smcd-agent')), false);
      assert.equal(existsSync(join(root, 'usr/local/sbin/smcd-agent')), false);
    });
  });
}
