import { dvdcliCommand } from './dvdcli.js';

// bin/dvdcli: installed as /usr/bin/dvdcli on Mesos agents in place of rexray's dvdcli.
await dvdcliCommand(process.argv.slice(2));
