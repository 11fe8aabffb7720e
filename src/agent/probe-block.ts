import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface BlockDevice {
  /** Name under /sys/block; "/" in the /dev path is written "!" there (cciss!c0d0). */
  name: string;
  /** Size in 512-byte sectors: sysfs always counts in 512 bytes, whatever the logical block size. */
  sectors: number;
  /** "major:minor", when sysfs has a `dev` file. */
  devNum?: string | undefined;
  /** device-mapper name (what appears under /dev/mapper), for dm-* devices. */
  dmName?: string | undefined;
  partitions: Array<{ name: string; devNum?: string | undefined }>;
  /** The devices this one is built on (device-mapper, md RAID); empty for a plain disk. */
  slaves: string[];
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

async function list(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch {
    return [];
  }
}

function parseSectors(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  return Number(text);
}

async function readDevice(dir: string, name: string): Promise<BlockDevice | undefined> {
  const sectors = parseSectors(await readText(join(dir, 'size')));
  if (sectors === undefined) return undefined;
  const entries = await list(dir);
  // Partitions are the subdirectories named after their disk (vda1, nvme0n1p1) that have a size.
  const partitions = await Promise.all(
    entries
      .filter((e) => e.startsWith(name) && e !== name)
      .map(async (part) => {
        const partDir = join(dir, part);
        if (parseSectors(await readText(join(partDir, 'size'))) === undefined) return undefined;
        return { name: part, devNum: await readText(join(partDir, 'dev')) };
      }),
  );
  return {
    name,
    sectors,
    devNum: await readText(join(dir, 'dev')),
    dmName: await readText(join(dir, 'dm', 'name')),
    partitions: partitions.filter((p) => p !== undefined),
    slaves: await list(join(dir, 'slaves')),
  };
}

/** Every entry of <sys>/block that has a readable size; [] when there is no such directory. */
export async function readBlockDevices(sysRoot: string): Promise<BlockDevice[]> {
  const blockDir = join(sysRoot, 'block');
  const devices = await Promise.all((await list(blockDir)).map((name) => readDevice(join(blockDir, name), name)));
  return devices.filter((d) => d !== undefined);
}
