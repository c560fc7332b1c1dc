import { basename } from 'node:path';

/**
 * The single executable's entry point: one binary serves both commands. Started through a link
 * named dvdcli (as the Mesos isolator calls it), it is dvdcli; otherwise it is loopvol, whose own
 * `dvdcli` command works as well. (No top-level await: the executable runs a CommonJS bundle.)
 */
void (basename(process.argv0) === 'dvdcli' ? import('../cli/dvdcli-main.js') : import('../cli/main.js'));
