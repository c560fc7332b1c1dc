import { dvdcliCommand } from './dvdcli.js';

// bin/dvdcli: installed as /usr/bin/dvdcli on Mesos agents in place of rexray's dvdcli.
// dvdcliCommand reports its own failures; no top-level await, so the single executable can bundle it.
void dvdcliCommand(process.argv.slice(2));
