import { join } from 'node:path';

/**
 * Where everything lives under the data root:
 *   volumes/<name>/volume.json   metadata (atomic, durable rewrite)
 *   volumes/<name>/holders.json  who has it mounted (atomic rewrite, not fsynced: see Store.saveHolders)
 *   volumes/<name>/disk.img      the sparse or preallocated image
 *   volumes/<name>/disk-claim.json  a disk volume's disk and filesystem UUID (see state/disk-claim.ts)
 *   volumes/<name>/cluster.json  with --cluster: the copy's generation and fence (cluster/ownership.ts)
 *   volumes/<name>/mnt/          the mountpoint, or <mountRoot>/<name>/ when a mount root is set
 *                                (a managed plugin mounts under its propagated mount, data stays apart)
 *   staging/<random>/            a Create in progress; renamed into volumes/ when complete
 *   trash/<random>/              a Remove in progress; deleted, and emptied again at start-up
 *   spares/                      images and ext4 templates formatted ahead of time for Create (remade at start-up)
 * A volume exists exactly when volumes/<name>/volume.json does, so a crash never leaves one half-made.
 */
export interface VolumePaths {
  dir: string;
  meta: string;
  holders: string;
  image: string;
  claim: string;
  mountPoint: string;
}

export const META_FILE = 'volume.json';
export const HOLDERS_FILE = 'holders.json';
export const IMAGE_FILE = 'disk.img';
export const CLAIM_FILE = 'disk-claim.json';
export const MOUNT_DIR = 'mnt';

export function volumePathsIn(dir: string, mountPoint = join(dir, MOUNT_DIR)): VolumePaths {
  return {
    dir,
    meta: join(dir, META_FILE),
    holders: join(dir, HOLDERS_FILE),
    image: join(dir, IMAGE_FILE),
    claim: join(dir, CLAIM_FILE),
    mountPoint,
  };
}

export class Layout {
  readonly volumes: string;
  readonly staging: string;
  readonly trash: string;
  readonly spares: string;

  /** `mountRoot` empty: each volume is mounted inside its own directory. */
  constructor(
    readonly root: string,
    readonly mountRoot = '',
  ) {
    this.volumes = join(root, 'volumes');
    this.staging = join(root, 'staging');
    this.trash = join(root, 'trash');
    this.spares = join(root, 'spares');
  }

  /** Every request asks for its volume's paths, often several times: they are computed once. */
  private readonly paths = new Map<string, VolumePaths>();

  /** `name` must already be validated (volumeName): it is used as a path component. */
  volume(name: string): VolumePaths {
    let paths = this.paths.get(name);
    if (!paths) {
      const dir = join(this.volumes, name);
      paths = volumePathsIn(dir, this.mountRoot ? join(this.mountRoot, name) : undefined);
      this.paths.set(name, paths);
    }
    return paths;
  }

  /** Forgets a removed volume's paths (names are unbounded over a daemon's life). */
  forget(name: string): void {
    this.paths.delete(name);
  }
}
