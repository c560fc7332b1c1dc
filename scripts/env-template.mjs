#!/usr/bin/env node
// Prints the commented /etc/loopvol/loopvol.env that scripts/install writes, from the settings table
// of the built tree next to it (dist/), so the file lists exactly the settings this version has.
import { envTemplate } from '../dist/config/env-template.js';

process.stdout.write(envTemplate());
