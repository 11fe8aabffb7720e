import type { BlockDevice } from './probe-block.ts';
import type { Mount } from './probe-mounts.ts';

export interface SystemDisk {
  path: string;
  device: string;
  sizeGiB: number;
}

export interface DataDisk {
  index: number;
  path: string;
  device: string;
  sizeGiB: number;
}

/**
 * Devices that are not disks a migration could copy: loop files, RAM disks, optical drives,
 * network block devices, floppies. dm-* and md* are composites, resolved through their slaves.
 */
const NOT_A_DISK = /^(loop|ram|zram|sr|nbd|fd|dm-|md)/;

const GIB = 2 ** 30;

/** Whole GiB, rounded to nearest; a non-empty disk never reports 0. */
export function sectorsToGiB(sectors: number): number {
  const bytes = sectors * 512;
  return bytes > 0 ? Math.max(1, Math.round(bytes / GIB)) : 0;
}

/** Kernel naming order: vdb before vdaa, nvme2n1 before nvme10n1. */
const diskOrder = (a: string, b: string): number => a.length - b.length || a.localeCompare(b, 'en', { numeric: true });

const devicePath = (name: string): string => `/dev/${name.replace(/!/g, '/')}`;

class BlockIndex {
  readonly byName = new Map<string, BlockDevice>();
  readonly parentOf = new Map<string, string>();
  readonly byDevNum = new Map<string, string>();
  readonly byDmName = new Map<string, string>();

  constructor(devices: BlockDevice[]) {
    for (const d of devices) {
      this.byName.set(d.name, d);
      if (d.devNum) this.byDevNum.set(d.devNum, d.name);
      if (d.dmName) this.byDmName.set(d.dmName, d.name);
      for (const p of d.partitions) {
        this.parentOf.set(p.name, d.name);
        if (p.devNum) this.byDevNum.set(p.devNum, p.name);
      }
    }
  }

  isDisk(d: BlockDevice): boolean {
    return d.sectors > 0 && d.slaves.length === 0 && !NOT_A_DISK.test(d.name);
  }

  /** The block device (disk or partition) a mount comes from, if sysfs knows it. */
  nameOf(mount: Mount): string | undefined {
    const byNum = mount.devNum && this.byDevNum.get(mount.devNum);
    if (byNum) return byNum;
    if (!mount.source.startsWith('/dev/')) return undefined;
    const rest = mount.source.slice('/dev/'.length);
    if (rest.startsWith('mapper/')) return this.byDmName.get(rest.slice('mapper/'.length));
    const name = rest.replace(/\//g, '!');
    return this.byName.has(name) || this.parentOf.has(name) ? name : undefined;
  }

  /** The physical disks under a device: a partition's disk, or the members of an LVM volume / RAID array. */
  disksUnder(name: string, seen = new Set<string>()): string[] {
    if (seen.has(name)) return [];
    seen.add(name);
    const parent = this.parentOf.get(name);
    if (parent !== undefined) return this.disksUnder(parent, seen);
    const device = this.byName.get(name);
    if (!device) return [];
    if (device.slaves.length > 0) return device.slaves.flatMap((s) => this.disksUnder(s, seen));
    return this.isDisk(device) ? [name] : [];
  }
}

/**
 * The system disk is the disk holding "/". When "/" is not on a block device sysfs knows
 * (a container's overlay, tmpfs, NFS, ZFS), the largest disk stands in for it, because that is
 * the disk a migration would most likely make the system disk. Every other disk is a data disk,
 * with the first place it (or a partition or volume on it) is mounted, or "" when unmounted.
 */
export function pickDisks(mounts: Mount[], devices: BlockDevice[]): { systemDisk: SystemDisk | null; dataDisks: DataDisk[] } {
  const index = new BlockIndex(devices);
  const disks = devices.filter((d) => index.isDisk(d)).sort((a, b) => diskOrder(a.name, b.name));

  // The last mount on "/" is the one in effect (an early "rootfs" entry is mounted over).
  const rootMount = mounts.filter((m) => m.mountPoint === '/').at(-1);
  const rootName = rootMount && index.nameOf(rootMount);
  const rootDisks = rootName === undefined ? [] : index.disksUnder(rootName).sort(diskOrder);
  const system =
    disks.find((d) => d.name === rootDisks[0]) ??
    disks.reduce<BlockDevice | undefined>((big, d) => (big && big.sectors >= d.sectors ? big : d), undefined);

  const mountPointOf = new Map<string, string>();
  for (const m of mounts) {
    // A bind mount shows a subdirectory elsewhere; it says nothing about where the disk lives.
    if (m.root !== undefined && m.root !== '/') continue;
    const name = index.nameOf(m);
    if (name === undefined) continue;
    for (const disk of index.disksUnder(name)) {
      if (!mountPointOf.has(disk)) mountPointOf.set(disk, m.mountPoint);
    }
  }

  return {
    systemDisk: system ? { path: '/', device: devicePath(system.name), sizeGiB: sectorsToGiB(system.sectors) } : null,
    dataDisks: disks
      .filter((d) => d !== system)
      .map((d, i) => ({
        index: i + 1,
        path: mountPointOf.get(d.name) ?? '',
        device: devicePath(d.name),
        sizeGiB: sectorsToGiB(d.sectors),
      })),
  };
}
