import { z } from 'zod';
import {
  backupsRequest,
  createRequest,
  fsckRequest,
  gcRequest,
  mountRequest,
  nameRequest,
  resizeRequest,
  snapshotRequest,
} from './schemas.js';

/**
 * What each endpoint takes and answers, on the wire. The routes build replies of these types (tsc
 * checks them, nothing is parsed on the server); the client parses what a daemon answers with
 * them, since `loopvol` may talk to a daemon of another version. Fields a schema does not name
 * are no error: a newer daemon may add some, and the client hands on the reply as sent, with
 * them (`--json` prints them). So no transforms or defaults here.
 */

/** A volume as List names it. */
export const volumeEntry = z.object({ Name: z.string(), Mountpoint: z.string() });

/** Get's Status: what every volume has; the rooms beside the service add more (backups, cluster). */
export const volumeStatus = z.object({
  backend: z.string(),
  disk: z.string().optional(),
  size: z.number(),
  fs: z.string(),
  sparse: z.boolean(),
  /** Encrypted at rest (fscrypt); daemons before encryption do not say. */
  encrypted: z.boolean().optional(),
  /** Only for a volume created with prealloc=zero. */
  prealloc: z.literal('zero').optional(),
  /** null when the image could not be measured. */
  allocated: z.number().nullable(),
  /** The data root's filesystem, for loop volumes; null for disks. */
  hostFree: z.number().nullable(),
  hostProvisioned: z.number().optional(),
  hostAllocated: z.number().optional(),
  warning: z.string().optional(),
  mounted: z.boolean(),
  holders: z.number(),
  loopDevice: z.string().nullable(),
  /** Measured only while mounted. */
  used: z.number().nullable(),
  free: z.number().nullable(),
  uid: z.number(),
  gid: z.number(),
  mode: z.string(),
  mountOptions: z.string(),
  snapshots: z.array(z.string()),
});

export const volume = z.object({
  Name: z.string(),
  Mountpoint: z.string(),
  CreatedAt: z.string(),
  Status: volumeStatus,
});

export const fsckReport = z.object({
  clean: z.boolean(),
  repaired: z.boolean(),
  command: z.string(),
  exitCode: z.number(),
  output: z.array(z.string()),
});

/** One thing gc looked at; kinds and actions are strings, so a newer daemon's new ones still read. */
export const gcFinding = z.object({
  kind: z.string(),
  target: z.string(),
  action: z.string(),
  reason: z.string(),
});

export const snapshot = z.object({
  name: z.string(),
  createdAt: z.string(),
  sizeBytes: z.number(),
  allocatedBytes: z.number(),
  fs: z.string(),
  method: z.string(),
  frozen: z.boolean(),
});

export const backup = z.object({
  id: z.string(),
  time: z.string(),
  host: z.string(),
  volume: z.string(),
  fs: z.string(),
  sizeBytes: z.number(),
  generation: z.number(),
});

export const verifyReport = z.object({
  volume: z.string(),
  backup: z.string(),
  backupTime: z.string(),
  generation: z.number(),
  ok: z.boolean(),
  problems: z.array(z.string()),
  sizeBytes: z.number(),
  restoredBytes: z.number(),
  seconds: z.number(),
  time: z.string(),
});

export const clusterVolume = z.object({ name: z.string(), owner: z.string(), ownerAlive: z.boolean() });

export type VolumeEntry = z.infer<typeof volumeEntry>;
export type VolumeStatus = z.infer<typeof volumeStatus>;
export type Volume = z.infer<typeof volume>;
export type FsckReport = z.infer<typeof fsckReport>;
export type GcFinding = z.infer<typeof gcFinding>;
export type Snapshot = z.infer<typeof snapshot>;
export type Backup = z.infer<typeof backup>;
export type VerifyReport = z.infer<typeof verifyReport>;
export type ClusterVolume = z.infer<typeof clusterVolume>;

/** A reply with nothing to say. */
const empty = z.object({});
/** A request whose body is ignored (dockerd sends {} or nothing). */
const ignored = z.unknown();

/**
 * Every endpoint loopvol serves: the request routes.ts parses and the reply it sends. A new
 * endpoint is one entry here and one handler in routes.ts, which gets the parsed request and must
 * return the reply (tsc checks it); callers use `callLoopvol` (client.ts) with the method's name.
 */
export const endpoints = {
  'Plugin.Activate': { request: ignored, reply: z.object({ Implements: z.array(z.string()) }) },
  'VolumeDriver.Capabilities': {
    request: ignored,
    reply: z.object({ Capabilities: z.object({ Scope: z.string() }) }),
  },
  'VolumeDriver.Create': { request: createRequest, reply: empty },
  'VolumeDriver.Remove': { request: nameRequest, reply: empty },
  'VolumeDriver.Mount': { request: mountRequest, reply: z.object({ Mountpoint: z.string() }) },
  'VolumeDriver.Unmount': { request: mountRequest, reply: empty },
  'VolumeDriver.Path': { request: nameRequest, reply: z.object({ Mountpoint: z.string() }) },
  'VolumeDriver.Get': { request: nameRequest, reply: z.object({ Volume: volume }) },
  'VolumeDriver.List': { request: ignored, reply: z.object({ Volumes: z.array(volumeEntry) }) },
  'Loopvol.Resize': { request: resizeRequest, reply: empty },
  'Loopvol.Fsck': { request: fsckRequest, reply: z.object({ Fsck: fsckReport }) },
  'Loopvol.Gc': { request: gcRequest, reply: z.object({ Findings: z.array(gcFinding) }) },
  'Loopvol.SnapshotCreate': { request: snapshotRequest, reply: z.object({ Snapshot: snapshot }) },
  'Loopvol.SnapshotList': {
    request: snapshotRequest,
    reply: z.object({ Snapshots: z.array(snapshot) }),
  },
  'Loopvol.SnapshotRemove': { request: snapshotRequest, reply: empty },
  'Loopvol.Backup': { request: nameRequest, reply: z.object({ Backup: backup }) },
  'Loopvol.BackupVerify': { request: nameRequest, reply: z.object({ Verify: verifyReport }) },
  'Loopvol.Backups': { request: backupsRequest, reply: z.object({ Backups: z.array(backup) }) },
  'Loopvol.Cluster': {
    request: ignored,
    reply: z.object({ Volumes: z.array(clusterVolume) }),
  },
} as const;

export type Method = keyof typeof endpoints;
/** A request body as a client writes it (before the route's defaults). */
export type RequestOf<M extends Method> = z.input<(typeof endpoints)[M]['request']>;
/** A request body as the route reads it (parsed, defaults filled). */
export type ParsedRequestOf<M extends Method> = z.output<(typeof endpoints)[M]['request']>;
export type ReplyOf<M extends Method> = z.infer<(typeof endpoints)[M]['reply']>;
