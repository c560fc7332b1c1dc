// Writes plugin-config.json to stdout less the capabilities this host's root cannot grant: dockerd
// would refuse to enable the plugin ("unable to apply caps"). Some sandboxes drop CAP_SYS_RESOURCE;
// without it the plugin works, except that an ext4 volume grows only while unmounted.
import { readFileSync } from 'node:fs';

/** <linux/capability.h> numbers of the capabilities plugin-config.json may ask for. */
const BITS = { CAP_SYS_ADMIN: 21, CAP_SYS_RESOURCE: 24 };

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const bounding = BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]}`);
const held = (cap) => BITS[cap] === undefined || ((bounding >> BigInt(BITS[cap])) & 1n) === 1n;
const dropped = config.linux.capabilities.filter((cap) => !held(cap));
if (dropped.length > 0) {
  process.stderr.write(
    `build-plugin: this host cannot grant ${dropped.join(', ')}: the plugin is made without it` +
      ' (CAP_SYS_RESOURCE: ext4 volumes then grow only while unmounted)\n',
  );
  config.linux.capabilities = config.linux.capabilities.filter(held);
}
process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
