import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';

import { importParams, systemInfoOf } from '../src/agent/import.ts';
import { readMachineId } from '../src/agent/machine-id.ts';
import { collectMachineInfo, type MachineInfo } from '../src/agent/probe.ts';
import { flattenParams } from '../src/client/rpc-client.ts';
import { assertShell, FIXTURES, parseProbe, runAgent, type Shell, scratchDir, shell, shellSkip, shellWithAwk } from './helpers/shell-agent.ts';

const PACKAGE_VERSION = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version as string;
const KIB = 1024;

interface Expected {
  MachineId: string | RegExp;
  Hostname: string;
  Platform: string;
  Architecture: string;
  KernelLevel: number;
  kernel: string;
  SystemDiskSize?: number;
  disks: Array<[number, string, number]>;
  cores: number;
  memory: number;
  ipv4: string[];
  ipv6: string[];
}

/** What each distribution's tree under test/fixtures/shell-agent must be reported as. */
const DISTRIBUTIONS: Record<string, Expected> = {
  // xfs on the LVM volume centos-root, on sda2; /boot on sda1; /data on sdb1; a DVD drive (sr0) is no disk.
  centos7: {
    MachineId: '5f1c0a2b3d4e4f60718293a4b5c6d7e8',
    Hostname: 'centos7-web',
    Platform: 'CentOS Linux 7',
    Architecture: 'x86_64',
    KernelLevel: 3,
    kernel: '3.10.0-1160.el7.x86_64',
    SystemDiskSize: 20,
    disks: [[1, '/data', 50]],
    cores: 4,
    memory: 7990060 * KIB,
    ipv4: ['172.16.10.21', '172.16.10.22'],
    ipv6: ['2001:db8:10::21'],
  },
  // ext4 on vda1; vdb mounted at a path with a space (after a bind mount of it, which does not count);
  // an unmounted 2.6 GiB vdc; snaps on loop devices; /etc/machine-id empty, the D-Bus one used.
  ubuntu1804: {
    MachineId: '0b8c3e7f21a94c6d8e5f4a3b2c1d0e9f',
    Hostname: 'ubuntu-db',
    Platform: 'Ubuntu 18.04',
    Architecture: 'x86_64',
    KernelLevel: 4,
    kernel: '4.15.0-213-generic',
    SystemDiskSize: 40,
    disks: [
      [1, '/var/lib/mysql data', 100],
      [2, '', 3],
    ],
    cores: 2,
    memory: 4039300 * KIB,
    ipv4: ['10.0.3.15'],
    ipv6: [],
  },
  // aarch64; /proc/mounts only; NVMe in kernel order (nvme2n1 before nvme10n1); no `ip` output:
  // addresses from /proc/net/fib_trie and if_inet6; no machine id: one is generated.
  'alpine-arm64': {
    MachineId: /^[0-9a-f]{32}$/,
    Hostname: 'alpine-edge',
    Platform: 'Alpine Linux 3.19.1',
    Architecture: 'arm64',
    KernelLevel: 6,
    kernel: '6.6.14-0-virt',
    SystemDiskSize: 8,
    disks: [
      [1, '/srv', 30],
      [2, '', 1],
      [3, '', 1],
    ],
    cores: 2,
    memory: 1004516 * KIB,
    ipv4: ['192.168.64.7'],
    ipv6: ['2001:410::abcd', 'fd00:0:0:1::'],
  },
  // btrfs root mounted from a snapshot subvolume of sda3; md0 RAID1 of sdb1 and sdc1 on /srv/data.
  sles15sp5: {
    MachineId: 'a7d3c4e5f6a7b8c9d0e1f2a3b4c5d6e7',
    Hostname: 'sles-erp-01',
    Platform: 'SLES 15.5',
    Architecture: 'x86_64',
    KernelLevel: 5,
    kernel: '5.14.21-150500.55.39-default',
    SystemDiskSize: 60,
    disks: [
      [1, '/srv/data', 200],
      [2, '/srv/data', 200],
    ],
    cores: 8,
    memory: 32594464 * KIB,
    ipv4: ['10.20.0.11', '192.168.50.11', '172.17.0.1'],
    ipv6: ['2001:db8:20::11', 'fd12:3456:789a::11'],
  },
};

const roots = (root: string) => ({ procRoot: join(root, 'proc'), sysRoot: join(root, 'sys'), etcRoot: join(root, 'etc') });

async function probe(sh: Shell, root: string, extra: Record<string, string> = {}) {
  const stateFile = join(scratchDir('smcd-probe-state-'), 'agent', 'state');
  const run = await runAgent(sh, ['probe'], { env: { SMCD_PROBE_ROOT: root, SMCD_STATE_FILE: stateFile, ...extra } });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '');
  return { params: parseProbe(run.stdout), stateFile, stdout: run.stdout };
}

/**
 * The parameters the Node agent would send for the same tree: its own disks and OS fields, with
 * what it takes from the os module (hostname, kernel, cores, memory, architecture, addresses)
 * set to what the shell agent read from the tree.
 */
async function nodeParams(root: string, shellParams: Map<string, string>): Promise<Array<[string, string]>> {
  const info = await collectMachineInfo(roots(root));
  const sys = JSON.parse(shellParams.get('SystemInfo')!);
  const asNode: MachineInfo = {
    ...info,
    hostname: sys.hostname,
    kernel: sys.kernel,
    kernelLevel: Number(shellParams.get('KernelLevel')),
    architecture: shellParams.get('Architecture')!,
    cores: sys.cores,
    memoryBytes: sys.memory,
    ipv4: sys.ipv4,
    ipv6: sys.ipv6,
  };
  const params = flattenParams(importParams(asNode, shellParams.get('MachineId')!));
  params.AgentVersion = `sh-${PACKAGE_VERSION}`;
  return Object.entries(params);
}

function assertExpected(params: Map<string, string>, want: Expected) {
  const machineId = params.get('MachineId')!;
  if (typeof want.MachineId === 'string') assert.equal(machineId, want.MachineId);
  else assert.match(machineId, want.MachineId);
  assert.equal(params.get('Hostname'), want.Hostname);
  assert.equal(params.get('Platform'), want.Platform);
  assert.equal(params.get('Architecture'), want.Architecture);
  assert.equal(params.get('KernelLevel'), String(want.KernelLevel));
  assert.equal(params.get('AgentVersion'), `sh-${PACKAGE_VERSION}`);
  assert.equal(params.get('SystemDiskSize'), want.SystemDiskSize === undefined ? undefined : String(want.SystemDiskSize));
  const disks: Array<[number, string, number]> = [];
  for (let n = 1; params.has(`DataDisk.${n}.Index`); n++) {
    disks.push([Number(params.get(`DataDisk.${n}.Index`)), params.get(`DataDisk.${n}.Path`)!, Number(params.get(`DataDisk.${n}.Size`))]);
  }
  assert.deepEqual(disks, want.disks);
  const info = JSON.parse(params.get('SystemInfo')!);
  assert.deepEqual(info, {
    hostname: want.Hostname,
    ipv4: want.ipv4,
    ipv6: want.ipv6,
    cores: want.cores,
    memory: want.memory,
    kernel: want.kernel,
    os: want.Platform,
  });
}

/** Writes { 'relative/path': 'content' } under a fresh directory. */
function tree(files: Record<string, string>): string {
  const root = scratchDir('smcd-tree-');
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

const kernelFiles = (hostname: string, release: string, arch: string) => ({
  'proc/sys/kernel/hostname': `${hostname}\n`,
  'proc/sys/kernel/osrelease': `${release}\n`,
  'proc/sys/kernel/arch': `${arch}\n`,
});

const SHELLS = [shell('dash'), shell('busybox'), shell('bash'), shellWithAwk('mawk')];

for (const sh of SHELLS) {
  // mawk is optional (Debian's default awk, not installed everywhere); the shells are not, under CI.
  const options = sh.name === 'dash+mawk' && sh.missing ? { skip: sh.missing } : shellSkip(sh);
  describe(`probe under ${sh.name}`, options, () => {
    before(() => assertShell(sh));

    for (const [name, want] of Object.entries(DISTRIBUTIONS)) {
      it(`${name}: platform, architecture, kernel, disks, cores, memory, addresses; the same disks and OS as the Node agent`, async () => {
        const root = join(FIXTURES, name);
        const { params } = await probe(sh, root);
        assertExpected(params, want);
        assert.deepEqual(
          [...params.entries()],
          await nodeParams(root, params),
          'the same parameters, in the same order, as src/agent/import.ts importParams',
        );
      });
    }
  });
}

for (const sh of [shell('dash'), shell('busybox')]) {
  describe(`probe edge cases under ${sh.name}`, shellSkip(sh), () => {
    before(() => assertShell(sh));

    it('older release files when there is no os-release: redhat-release, SuSE-release, alpine-release, none', async () => {
      const cases: Array<[Record<string, string>, string, string, number]> = [
        [
          {
            ...kernelFiles('rhel6', '2.6.32-754.el6.i686', 'i686'),
            'etc/redhat-release': 'Red Hat Enterprise Linux Server release 6.10 (Santiago)\n',
          },
          'Red Hat Enterprise Linux Server 6.10',
          'i386',
          2,
        ],
        [
          {
            ...kernelFiles('sles11', '3.0.101-63-default', 's390x'),
            'etc/SuSE-release': 'SUSE Linux Enterprise Server 11 (s390x)\nVERSION = 11\nPATCHLEVEL = 4\n',
          },
          'SUSE Linux Enterprise Server 11.4',
          's390x',
          3,
        ],
        [{ ...kernelFiles('old-alpine', '4.14.167-0-virt', 'armv7l'), 'etc/alpine-release': '3.8.5\n' }, 'Alpine Linux 3.8.5', 'armv7l', 4],
        [kernelFiles('bare', '5.4.0-1-generic', 'i586'), 'Linux 5.4.0-1-generic', 'i386', 5],
      ];
      for (const [files, platform, architecture, level] of cases) {
        const { params } = await probe(sh, tree(files));
        assert.equal(params.get('Platform'), platform);
        assert.equal(params.get('Architecture'), architecture);
        assert.equal(params.get('KernelLevel'), String(level));
        // No /sys/block, no mounts: no disks at all, as the Node agent reports (null, []).
        assert.equal(params.has('SystemDiskSize'), false);
        assert.equal(params.has('DataDisk.1.Index'), false);
      }
    });

    it('long names and many addresses are cut as the Node agent cuts them; quotes and backslashes survive JSON', async () => {
      const hostname = `${'h'.repeat(250)}中文中文中文中文${'x'.repeat(40)}`;
      const addresses = ['1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever'];
      for (let i = 1; i <= 80; i++) addresses.push(`2: eth0    inet 10.1.${i}.1/16 scope global eth0\\       valid_lft forever`);
      for (let i = 1; i <= 40; i++) addresses.push(`2: eth0    inet6 2001:db8:${i.toString(16)}::1/64 scope global \\       valid_lft forever`);
      const root = tree({
        ...kernelFiles(hostname, '6.1.0-18-amd64', 'x86_64'),
        'etc/os-release': 'NAME="Weird \\"Linux\\" \\\\ \\$HOME Ünïcødé 発行"\nVERSION_ID=\'1.0\'\n',
        'ip-addr.txt': `${addresses.join('\n')}\n`,
        'proc/cpuinfo': 'processor\t: 0\n',
        'proc/meminfo': 'MemTotal:       1 kB\n',
      });
      const { params } = await probe(sh, root);
      assert.equal(params.get('Platform'), 'Weird "Linux" \\ $HOME Ünïcødé 発行 1.0');
      assert.equal(Array.from(params.get('Hostname')!).length, 255);
      const systemInfo = params.get('SystemInfo')!;
      assert.ok(Buffer.byteLength(systemInfo) <= 1024, `${Buffer.byteLength(systemInfo)} bytes`);
      const sys = JSON.parse(systemInfo);
      assert.equal(sys.ipv6.length, 0, 'IPv6 addresses go first');
      assert.ok(sys.ipv4.length > 0 && sys.ipv4.length < 80);
      assert.equal(sys.hostname, hostname, 'names are cut only when dropping addresses is not enough');
      assert.deepEqual([...params.entries()], await nodeParams(root, params));
      const info = await collectMachineInfo(roots(root));
      const full = { ...info, hostname, kernel: '6.1.0-18-amd64', kernelLevel: 6, architecture: 'x86_64', cores: 1, memoryBytes: 1024 };
      const allAddresses = {
        ipv4: Array.from({ length: 80 }, (_, i) => `10.1.${i + 1}.1`),
        ipv6: Array.from({ length: 40 }, (_, i) => `2001:db8:${(i + 1).toString(16)}::1`),
      };
      assert.equal(systemInfo, systemInfoOf({ ...full, ...allAddresses }), 'SystemInfo byte for byte as systemInfoOf drops and cuts');
    });

    it('a generated MachineId lives in <state dir>/machine-id, the file the Node agent uses, both ways', async () => {
      const root = join(FIXTURES, 'alpine-arm64');
      const first = await probe(sh, root);
      const stateDir = dirname(first.stateFile);
      const id = first.params.get('MachineId')!;
      assert.equal(readFileSync(join(stateDir, 'machine-id'), 'utf8'), `${id}\n`);
      assert.equal(statSync(join(stateDir, 'machine-id')).mode & 0o777, 0o600);
      assert.equal(statSync(stateDir).mode & 0o777, 0o700);
      assert.equal(await readMachineId(stateDir, join(root, 'etc')), id, 'the Node agent reads the same id');
      const again = await runAgent(sh, ['probe'], { env: { SMCD_PROBE_ROOT: root, SMCD_STATE_FILE: first.stateFile } });
      assert.equal(parseProbe(again.stdout).get('MachineId'), id, 'stable');

      const nodeDir = join(scratchDir('smcd-node-state-'), 'state');
      const nodeId = await readMachineId(nodeDir, join(root, 'etc'));
      const shellSide = await runAgent(sh, ['probe'], { env: { SMCD_PROBE_ROOT: root, SMCD_STATE_FILE: join(nodeDir, 'state') } });
      assert.equal(parseProbe(shellSide.stdout).get('MachineId'), nodeId, 'the shell agent reads the id the Node agent generated');
    });

    it('SMCD_MACHINE_ID overrides the machine id (cloned machines); a malformed one is a usage error', async () => {
      const root = join(FIXTURES, 'centos7');
      assert.equal((await probe(sh, root, { SMCD_MACHINE_ID: 'clone-01.web:2' })).params.get('MachineId'), 'clone-01.web:2');
      const bad = await runAgent(sh, ['probe'], {
        env: { SMCD_PROBE_ROOT: root, SMCD_STATE_FILE: join(scratchDir(), 'state'), SMCD_MACHINE_ID: 'no spaces' },
      });
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /SMCD_MACHINE_ID must be/);
    });

    it('this machine, without a probe root: what the Node agent reads from /proc, /sys, /etc and the os module', async () => {
      const { params } = await probe(sh, '');
      const info = await collectMachineInfo();
      const sys = JSON.parse(params.get('SystemInfo')!);
      assert.equal(params.get('Hostname'), os.hostname());
      assert.equal(sys.kernel, os.release());
      assert.equal(params.get('KernelLevel'), String(info.kernelLevel));
      assert.equal(params.get('Architecture'), info.architecture);
      assert.equal(sys.cores, os.availableParallelism());
      assert.equal(sys.memory, os.totalmem());
      assert.deepEqual(new Set(sys.ipv4), new Set(info.ipv4));
      assert.deepEqual(new Set(sys.ipv6), new Set(info.ipv6));
      const node = flattenParams(importParams(info, 'x'));
      assert.equal(params.get('Platform'), node.Platform);
      assert.equal(params.get('SystemDiskSize'), node.SystemDiskSize);
      for (const [k, v] of Object.entries(node)) if (k.startsWith('DataDisk.')) assert.equal(params.get(k), v, k);
      assert.equal(
        [...params.keys()].filter((k) => k.startsWith('DataDisk.')).length,
        Object.keys(node).filter((k) => k.startsWith('DataDisk.')).length,
      );
      if (existsSync('/etc/machine-id')) assert.equal(params.get('MachineId'), await readMachineId(scratchDir()));
    });
  });
}
