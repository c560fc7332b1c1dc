import { z } from 'zod';
import type { ClusterOptions } from '../cluster/options.js';
import { type DurationBounds, parseDuration } from '../core/duration.js';
import { parseOptionList } from '../core/option-policy.js';
import { ACCEPTED_OPTIONS, OPTION_ALIASES } from '../core/options.js';
import { parseSize } from '../core/size.js';
import type { ListenAddress } from '../metrics/server.js';

/*
 * The kinds of value a daemon setting takes. Each parses the raw string (flag, environment or
 * default) and words its errors with `flag` ("--data-root"), so the operator sees which to fix.
 */

export const absolutePath = (flag: string) =>
  z.string().refine((p) => p.startsWith('/'), `${flag} must be an absolute path`);

/** An absolute directory other than /, without trailing slashes; `optional` also accepts "" (unset). */
export const directory = (flag: string, optional = false) => {
  const unset = (p: string) => optional && p === '';
  return z
    .string()
    .refine((p) => unset(p) || p.startsWith('/'), `${flag} must be an absolute path`)
    .refine((p) => unset(p) || !/^\/+$/.test(p), `${flag} must not be /`)
    .transform((p) => p.replace(/\/+$/, ''));
};

/** Words zod's custom error for parsers that return `{ error }` rather than throwing. */
const parsed = <T>(parse: (s: string) => T | { error: string }) =>
  z.string().transform((s, ctx) => {
    const result = parse(s);
    if (typeof result === 'object' && result !== null && 'error' in result) {
      ctx.addIssue({ code: 'custom', message: result.error });
      return z.NEVER;
    }
    return result as T;
  });

/** A size such as 512M or 10G (see parseSize), in bytes. */
export const size = (flag: string) =>
  parsed((s) => {
    const result = parseSize(s);
    return 'error' in result ? { error: `${flag}: ${result.error}` } : result.bytes;
  });

/** A duration such as 500ms or 2s, a bare number being seconds (see parseDuration), in milliseconds. */
export const duration = (flag: string, bounds: DurationBounds) =>
  parsed((s) => {
    const result = parseDuration(flag, s, bounds);
    return 'error' in result ? result : result.ms;
  });

/** Comma-separated Create option keys (--allow-options, --deny-options); an alias names its option. */
export const optionList = (flag: string) =>
  parsed((s) => parseOptionList(flag, s, ACCEPTED_OPTIONS, OPTION_ALIASES));

/** A whole number from 0 to `max` (at most four digits). */
export const wholeNumber = (message: string, max: number) =>
  z
    .string()
    .regex(/^\d{1,4}$/, message)
    .transform(Number)
    .refine((n) => n <= max, message);

/** An on/off switch: "true" or "false". */
export const onOff = (message: string) =>
  z.enum(['true', 'false'], { error: message }).transform((v) => v === 'true');

/** HOST:PORT, the host a name, an IPv4 address or a bracketed IPv6 address; "": unset. */
export const listenAddress = (flag: string) =>
  parsed((s): ListenAddress | undefined | { error: string } => {
    if (s === '') return undefined;
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(s);
    const port = Number(m?.[2]);
    if (!m?.[1] || port < 1 || port > 65535) {
      return { error: `${flag} takes HOST:PORT, e.g. 127.0.0.1:9323` };
    }
    return { host: m[1].replace(/^\[|\]$/g, ''), port };
  });

/** zk://HOST:PORT,HOST:PORT/PATH as the ZooKeeper client wants it: hosts, and loopvol's root; "": unset. */
export const zookeeperUrl = (flag: string) =>
  z
    .string()
    .regex(
      /^(zk:\/\/[A-Za-z0-9.:,[\]-]+(\/[A-Za-z0-9_./-]*)?)?$/,
      `${flag} takes zk://HOST:PORT[,HOST:PORT...]/PATH`,
    )
    .transform((url): Pick<ClusterOptions, 'connectString' | 'root'> | undefined => {
      if (url === '') return undefined;
      const rest = url.slice('zk://'.length);
      const slash = rest.indexOf('/');
      const connectString = slash === -1 ? rest : rest.slice(0, slash);
      const root = (slash === -1 ? '' : rest.slice(slash)).replace(/\/+$/, '') || '/loopvol';
      return { connectString, root };
    });
