import os from 'node:os';

import { readBlockDevices } from './probe-block.ts';
import { type DataDisk, pickDisks, type SystemDisk } from './probe-disks.ts';
import { readMounts } from './probe-mounts.ts';
import { pickAddresses } from './probe-net.ts';
import { kernelLevelOf, mapArchitecture, readOsRelease } from './probe-os.ts';

export interface MachineInfo {
  hostname: string;
  platform: string;
  osVersion: string;
  architecture: string;
  kernel: string;
  kernelLevel: number;
  cores: number;
  memoryBytes: number;
  systemDisk: SystemDisk | null;
  dataDisks: DataDisk[];
  ipv4: string[];
  ipv6: string[];
}

export interface ProbeRoots {
  procRoot?: string;
  sysRoot?: string;
  etcRoot?: string;
}

/**
 * What a migration source says about itself. Reads only; never throws for a missing or odd
 * /proc, /sys or /etc (containers, chroots), reporting null / [] / the os module's view instead.
 */
export async function collectMachineInfo(opts: ProbeRoots = {}): Promise<MachineInfo> {
  const { procRoot = '/proc', sysRoot = '/sys', etcRoot = '/etc' } = opts;
  const [osRelease, mounts, devices] = await Promise.all([readOsRelease(etcRoot), readMounts(procRoot), readBlockDevices(sysRoot)]);
  const kernel = os.release();
  return {
    hostname: os.hostname(),
    platform: osRelease.NAME || osRelease.PRETTY_NAME || os.type(),
    osVersion: osRelease.VERSION_ID || kernel,
    architecture: mapArchitecture(os.arch(), os.machine()),
    kernel,
    kernelLevel: kernelLevelOf(kernel),
    cores: os.availableParallelism(),
    memoryBytes: os.totalmem(),
    ...pickDisks(mounts, devices),
    ...pickAddresses(os.networkInterfaces()),
  };
}
