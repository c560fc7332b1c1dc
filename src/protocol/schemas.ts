import { z } from 'zod';
import { volumeName } from '../core/name.js';

/** Request bodies of the VolumeDriver protocol. Unknown fields are ignored, as dockerd may add some. */
export const nameRequest = z.object({ Name: volumeName });

export const createRequest = z.object({
  Name: volumeName,
  // dockerd sends null when `docker run --volume-driver` creates implicitly; values are checked by the service.
  Opts: z.unknown().optional(),
});

export const mountRequest = z.object({
  Name: volumeName,
  // dvdcli and the Mesos isolator send no ID; an empty string means the same.
  // Docker sends 64 hex digits; the character set keeps IDs safe as JSON keys and in logs.
  ID: z
    .string()
    .max(256, 'ID is longer than 256 characters')
    .regex(/^[A-Za-z0-9_.:-]*$/, 'ID may only contain letters, digits, "_", ".", ":" and "-"')
    .optional()
    .nullable()
    .transform((id) => id || undefined),
});

/** Loopvol.Resize: the new size in the same forms as Create's `size` option. */
export const resizeRequest = z.object({
  Name: volumeName,
  Size: z.string().max(32, 'Size is too long'),
});

/** Loopvol.Fsck: check (and with Repair, repair) one unused volume's filesystem. */
export const fsckRequest = z.object({ Name: volumeName, Repair: z.boolean().optional().default(false) });

/** Loopvol.Gc: clean what interrupted work left; DryRun only lists it. */
export const gcRequest = z.object({ DryRun: z.boolean().optional().default(false) });

/** Loopvol.SnapshotCreate / SnapshotList / SnapshotRemove. */
export const snapshotRequest = z.object({
  Name: volumeName,
  Snapshot: z.string().max(255, 'Snapshot is too long').optional(),
  Force: z.boolean().optional().default(false),
});

/** Loopvol.Backups: a volume's backups, or every volume's. */
export const backupsRequest = z.object({ Name: volumeName.optional() });

/** Parses a raw body (dockerd sends no Content-Type; Activate has an empty body). */
export function parseBody(raw: Buffer | undefined): unknown {
  const text = raw?.toString('utf8').trim() ?? '';
  return text === '' ? {} : JSON.parse(text);
}

/** First problem of a failed parse, worded for the client. */
export function describeIssue(error: z.ZodError, input: unknown): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid request';
  const field = issue.path.join('.');
  if (issue.code === 'invalid_type' && field) {
    const missing =
      issue.path.reduce<unknown>((v, k) => (v as Record<PropertyKey, unknown> | undefined)?.[k], input) ===
      undefined;
    return missing
      ? `${field} is required and must be a ${issue.expected}`
      : `${field} must be a ${issue.expected}`;
  }
  return field && !issue.message.toLowerCase().includes(field.toLowerCase())
    ? `${field}: ${issue.message}`
    : issue.message;
}
