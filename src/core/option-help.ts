import { PRIVILEGED_OPTIONS } from './option-policy.js';
import { ACCEPTED_OPTIONS, MIN_BACKUP_INTERVAL_SECONDS, MIN_SIZE_BYTES, MOUNT_OPTIONS } from './options.js';
import { formatSize, MAX_SIZE_BYTES } from './size.js';

type OptionKey = (typeof ACCEPTED_OPTIONS)[number];

/**
 * What each Create option (`-o key=value`) takes and does, for `loopvol create --help`. Keyed by
 * ACCEPTED_OPTIONS, so a new option does not compile until it is described here.
 */
const OPTION_HELP: Record<OptionKey, { values: string; help: string }> = {
  size: {
    values: 'SIZE',
    help: `volume size: 512M, 10G, 1.5T (binary units), a bare number is GiB; at least ${formatSize(MIN_SIZE_BYTES.ext4)} (ext4) or ${formatSize(MIN_SIZE_BYTES.xfs)} (xfs), at most ${formatSize(MAX_SIZE_BYTES)}; default the daemon's --default-size`,
  },
  fs: { values: 'ext4|xfs', help: "filesystem; default the daemon's --default-fs" },
  sparse: { values: 'true|false', help: 'false preallocates the whole image; default true' },
  prealloc: {
    values: 'zero',
    help: 'ext4: writes zeros into the whole image at Create (takes its size on the host at once, and a write of it), so fsync-heavy work (databases) runs faster; implies sparse=false',
  },
  uid: { values: 'N', help: "owner of the volume's root directory, applied at first mount; default 0" },
  gid: { values: 'N', help: "group of the volume's root directory; default 0" },
  mode: { values: 'OCTAL', help: "mode of the volume's root directory, e.g. 0750; default 0755" },
  backend: {
    values: 'loop|disk',
    help: "disk: a whole disk from the daemon's --disk-pool, size the smallest accepted; default loop",
  },
  mountopts: {
    values: 'OPTS',
    help: `comma-separated, added to nosuid,nodev: ${MOUNT_OPTIONS.join(', ')} (data= for ext4 only)`,
  },
  from: {
    values: 'SOURCE',
    help: 'a clone of volume NAME or its snapshot NAME@SNAP, or a restore: backup (the latest of this name) or backup:ID',
  },
  backup: {
    values: 'TIME',
    help: `back the volume up this often: 30m, 6h, 1d, a bare number is seconds (at least ${MIN_BACKUP_INTERVAL_SECONDS}s); needs the daemon's --backup-repo`,
  },
  'backup-verify': {
    values: 'TIME',
    help: 'this often, restore the latest backup into a scratch image and check it (as loopvol backup verify)',
  },
  fresh: {
    values: 'true|false',
    help: "with the daemon's --cluster: create the name empty even where its gone owner left backups",
  },
  'restore-other': {
    values: 'true|false',
    help: 'from=backup:ID may restore a backup of another volume name',
  },
  encrypt: {
    values: 'true|false',
    help: "encrypt the files and names at rest with fscrypt (ext4 loop volumes; needs the daemon's --key-file); default the daemon's --encrypt-default",
  },
};

/** Create's options as help lines: `key=VALUES` and what it does, privileged ones said so. */
export function optionHelp(): [string, string][] {
  return ACCEPTED_OPTIONS.map((key) => {
    const { values, help } = OPTION_HELP[key];
    const privileged = PRIVILEGED_OPTIONS.includes(key)
      ? ' (privileged: only where the daemon runs with --allow-options naming it)'
      : '';
    return [`${key}=${values}`, `${help}${privileged}`];
  });
}
