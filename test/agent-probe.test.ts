import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { readMachineId } from '../src/agent/machine-id.ts';
import { collectMachineInfo } from '../src/agent/probe.ts';
import { pickAddresses } from '../src/agent/probe-net.ts';
import { kernelLevelOf, mapArchitecture, parseOsRelease } from '../src/agent/probe-os.ts';

const GIB_SECTORS = 2 ** 30 / 512;

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(os.tmpdir(), 'smcd-probe-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Writes { 'relative/path': 'content' } under a fresh directory and returns it. */
async function fixture(name: string, files: Record<string, string>): Promise<string> {
  const root = join(tmp, name);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
  await mkdir(root, { recursive: true });
  return root;
}

const roots = (root: string) => ({
  procRoot: join(root, 'proc'),
  sysRoot: join(root, 'sys'),
  etcRoot: join(root, 'etc'),
});

const DEBIAN_OS_RELEASE = ['PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"', 'NAME="Debian GNU/Linux"', 'VERSION_ID="12"', 'ID=debian', ''].join('\n');

describe('collectMachineInfo on this machine', () => {
  test('reports what the os module sees, and survives JSON', async () => {
    const info = await collectMachineInfo();
    assert.equal(info.hostname, os.hostname());
    assert.equal(info.kernel, os.release());
    assert.equal(info.kernelLevel, Number.parseInt(os.release(), 10));
    assert.equal(info.cores, os.availableParallelism());
    assert.equal(info.memoryBytes, os.totalmem());
    assert.ok(info.memoryBytes > 0);
    if (os.arch() === 'x64') assert.equal(info.architecture, 'x86_64');
    assert.ok(info.platform.length > 0);
    assert.ok(info.osVersion.length > 0);
    for (const address of info.ipv6) assert.doesNotMatch(address, /^fe[89ab]/i);
    assert.deepEqual(JSON.parse(JSON.stringify(info)), info);
  });
});

describe('architecture, kernel level, os-release', () => {
  test('maps Node arch names to the ones SMC writes', () => {
    assert.equal(mapArchitecture('x64', 'x86_64'), 'x86_64');
    assert.equal(mapArchitecture('arm64', 'aarch64'), 'arm64');
    assert.equal(mapArchitecture('ia32', 'i686'), 'i386');
    assert.equal(mapArchitecture('riscv64', 'riscv64'), 'riscv64');
    assert.equal(mapArchitecture('ppc64', 'ppc64le'), 'ppc64le');
  });

  test('kernel level is the major version', () => {
    assert.equal(kernelLevelOf('6.1.0-18-amd64'), 6);
    assert.equal(kernelLevelOf('3.10.0-1160.el7.x86_64'), 3);
    assert.equal(kernelLevelOf('weird'), 0);
  });

  test('os-release quoting', () => {
    const parsed = parseOsRelease(`NAME='Alibaba Cloud Linux'\nVERSION_ID=3\nX="say \\"hi\\""\n# comment\n`);
    assert.deepEqual(parsed, { NAME: 'Alibaba Cloud Linux', VERSION_ID: '3', X: 'say "hi"' });
  });
});

describe('collectMachineInfo on fixture trees', () => {
  test('a VM with a partitioned system disk and a data disk', async () => {
    const root = await fixture('vm', {
      'proc/mounts': [
        'proc /proc proc rw,nosuid 0 0',
        '/dev/vda1 / ext4 rw,relatime 0 0',
        'tmpfs /run tmpfs rw 0 0',
        '/dev/vdb /mnt/data\\040disk xfs rw 0 0',
        '/dev/vdb /srv/again xfs rw 0 0',
        '',
      ].join('\n'),
      'sys/block/vda/size': `${40 * GIB_SECTORS}\n`,
      'sys/block/vda/vda1/size': `${40 * GIB_SECTORS - 2048}\n`,
      'sys/block/vdb/size': `${100 * GIB_SECTORS}\n`,
      'sys/block/vdc/size': `${Math.round(2.6 * GIB_SECTORS)}\n`,
      'sys/block/vdd/size': '8\n',
      'sys/block/loop0/size': `${5 * GIB_SECTORS}\n`,
      'sys/block/sr0/size': '2097152\n',
      'sys/block/zram0/size': `${4 * GIB_SECTORS}\n`,
      'sys/block/loop1/size': '0\n',
      'etc/os-release': DEBIAN_OS_RELEASE,
    });
    const info = await collectMachineInfo(roots(root));
    assert.equal(info.platform, 'Debian GNU/Linux');
    assert.equal(info.osVersion, '12');
    assert.deepEqual(info.systemDisk, { path: '/', device: '/dev/vda', sizeGiB: 40 });
    assert.deepEqual(info.dataDisks, [
      { index: 1, path: '/mnt/data disk', device: '/dev/vdb', sizeGiB: 100 },
      { index: 2, path: '', device: '/dev/vdc', sizeGiB: 3 },
      { index: 3, path: '', device: '/dev/vdd', sizeGiB: 1 },
    ]);
  });

  test('mountinfo device numbers find /dev/root, LVM volumes and skip bind mounts', async () => {
    const root = await fixture('lvm', {
      'proc/self/mountinfo': [
        '22 1 0:21 / /proc rw - proc proc rw',
        '25 1 8:2 / / rw,relatime shared:1 - ext4 /dev/root rw',
        '30 25 253:0 /exports /srv/nfs rw - xfs /dev/mapper/data-vol rw',
        '31 25 253:0 / /data rw shared:5 master:2 - xfs /dev/mapper/data-vol rw',
        '',
      ].join('\n'),
      'proc/mounts': '/dev/sdz9 / ext4 rw 0 0\n',
      'sys/block/sda/size': `${20 * GIB_SECTORS}\n`,
      'sys/block/sda/dev': '8:0\n',
      'sys/block/sda/sda1/size': '2048\n',
      'sys/block/sda/sda1/dev': '8:1\n',
      'sys/block/sda/sda2/size': `${20 * GIB_SECTORS - 4096}\n`,
      'sys/block/sda/sda2/dev': '8:2\n',
      'sys/block/sdb/size': `${50 * GIB_SECTORS}\n`,
      'sys/block/sdb/dev': '8:16\n',
      'sys/block/sdb/sdb1/size': `${50 * GIB_SECTORS - 2048}\n`,
      'sys/block/sdb/sdb1/dev': '8:17\n',
      'sys/block/dm-0/size': `${50 * GIB_SECTORS - 8192}\n`,
      'sys/block/dm-0/dev': '253:0\n',
      'sys/block/dm-0/dm/name': 'data-vol\n',
      'sys/block/dm-0/slaves/sdb1': '',
    });
    const info = await collectMachineInfo(roots(root));
    assert.deepEqual(info.systemDisk, { path: '/', device: '/dev/sda', sizeGiB: 20 });
    assert.deepEqual(info.dataDisks, [{ index: 1, path: '/data', device: '/dev/sdb', sizeGiB: 50 }]);
    // No os-release in this tree: the os module's view.
    assert.equal(info.platform, os.type());
    assert.equal(info.osVersion, os.release());
  });

  test('a root the block devices do not hold: the largest disk stands in', async () => {
    const root = await fixture('container-with-disks', {
      'proc/mounts': 'overlay / overlay rw,lowerdir=/l,upperdir=/u,workdir=/w 0 0\n/dev/nvme1n1 /etc/hosts ext4 rw 0 0\n',
      'sys/block/nvme0n1/size': `${30 * GIB_SECTORS}\n`,
      'sys/block/nvme1n1/size': `${200 * GIB_SECTORS}\n`,
    });
    const info = await collectMachineInfo(roots(root));
    assert.deepEqual(info.systemDisk, { path: '/', device: '/dev/nvme1n1', sizeGiB: 200 });
    assert.deepEqual(info.dataDisks, [{ index: 1, path: '', device: '/dev/nvme0n1', sizeGiB: 30 }]);
  });

  test('an overlay root with no usable block devices gives null and [] without throwing', async () => {
    const root = await fixture('container', {
      'proc/mounts': 'overlay / overlay rw,lowerdir=/l 0 0\nproc /proc proc rw 0 0\n',
      'sys/block/loop0/size': `${GIB_SECTORS}\n`,
      'sys/block/zram0/size': 'garbage\n',
      'etc/os-release': 'ID=alpine\n',
    });
    const info = await collectMachineInfo(roots(root));
    assert.equal(info.systemDisk, null);
    assert.deepEqual(info.dataDisks, []);
    assert.equal(info.platform, os.type());
  });

  test('missing /proc, /sys and /etc entirely', async () => {
    const info = await collectMachineInfo(roots(join(tmp, 'does-not-exist')));
    assert.equal(info.systemDisk, null);
    assert.deepEqual(info.dataDisks, []);
    assert.equal(info.hostname, os.hostname());
  });
});

describe('pickAddresses', () => {
  test('drops loopback and link-local IPv6, keeps the rest', () => {
    const common = { netmask: '', mac: '00:00:00:00:00:00', cidr: null };
    const picked = pickAddresses({
      lo: [
        { ...common, address: '127.0.0.1', family: 'IPv4', internal: true },
        { ...common, address: '::1', family: 'IPv6', internal: true, scopeid: 0 },
      ],
      eth0: [
        { ...common, address: '10.0.0.5', family: 'IPv4', internal: false },
        { ...common, address: 'fe80::1', family: 'IPv6', internal: false, scopeid: 2 },
        { ...common, address: 'febf::1', family: 'IPv6', internal: false, scopeid: 2 },
        { ...common, address: '2001:db8::5', family: 'IPv6', internal: false, scopeid: 0 },
        { ...common, address: 'fec0::1', family: 'IPv6', internal: false, scopeid: 0 },
      ],
    });
    assert.deepEqual(picked, { ipv4: ['10.0.0.5'], ipv6: ['2001:db8::5', 'fec0::1'] });
  });
});

describe('readMachineId', () => {
  test('reads <etc>/machine-id', async () => {
    const root = await fixture('id-etc', { 'etc/machine-id': '3D1219C7C4C5404AAA1F6D2A48ADFDA4\n' });
    assert.equal(await readMachineId(join(root, 'state'), join(root, 'etc')), '3D1219C7C4C5404AAA1F6D2A48ADFDA4');
  });

  test('falls back to the D-Bus machine id beside that /etc', async () => {
    const root = await fixture('id-dbus', {
      'etc/machine-id': 'uninitialized\n',
      'var/lib/dbus/machine-id': 'abcdef0123456789abcdef0123456789\n',
    });
    assert.equal(await readMachineId(join(root, 'state'), join(root, 'etc')), 'abcdef0123456789abcdef0123456789');
  });

  test('generates one, stores it privately and reuses it', async () => {
    const root = await fixture('id-none', { 'etc/machine-id': '\n' });
    const stateDir = join(root, 'state', 'agent');
    const first = await readMachineId(stateDir, join(root, 'etc'));
    assert.match(first, /^[0-9a-f]{32}$/);
    assert.equal(await readMachineId(stateDir, join(root, 'etc')), first);
    assert.equal((await readFile(join(stateDir, 'machine-id'), 'utf8')).trim(), first);
    assert.equal((await stat(join(stateDir, 'machine-id'))).mode & 0o777, 0o600);
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
  });

  test('concurrent first calls agree on one id', async () => {
    const root = await fixture('id-race', {});
    const stateDir = join(root, 'state');
    const ids = await Promise.all(Array.from({ length: 8 }, () => readMachineId(stateDir, join(root, 'etc'))));
    assert.equal(new Set(ids).size, 1);
  });

  test('replaces a stored id that is not usable', async () => {
    const root = await fixture('id-corrupt', { 'state/machine-id': 'not hex\n' });
    const id = await readMachineId(join(root, 'state'), join(root, 'etc'));
    assert.match(id, /^[0-9a-f]{32}$/);
    assert.equal((await readFile(join(root, 'state', 'machine-id'), 'utf8')).trim(), id);
  });
});
