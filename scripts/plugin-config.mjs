// Writes the managed plugin's config.json to stdout, from plugin-config.json:
//
//   node scripts/plugin-config.mjs TEMPLATE LOOPVOL_DIR [--host-network]
//
// - Every daemon setting of LOOPVOL_DIR's settings table (dist/config/settings.js: the rootfs's
//   own loopvol, so the list is that of the code the plugin runs) becomes an env entry settable
//   with `docker plugin set`, its default as value, unless TEMPLATE fixes it (the socket, data root
//   and mount root are the plugin's shape, not choices).
// - --host-network: the host's network (cluster mode, metrics, a remote backup repository);
//   otherwise none. dockerd fixes a plugin's network when it is created.
// - Less the capabilities this host's root cannot grant: dockerd would refuse to enable the plugin
//   ("unable to apply caps"). Some sandboxes drop CAP_SYS_RESOURCE; without it the plugin works,
//   except that an ext4 volume grows only while unmounted.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [template, loopvolDir, ...flags] = process.argv.slice(2);
if (!template || !loopvolDir || flags.some((f) => f !== '--host-network')) {
  process.stderr.write('usage: node scripts/plugin-config.mjs TEMPLATE LOOPVOL_DIR [--host-network]\n');
  process.exit(2);
}
const config = JSON.parse(readFileSync(template, 'utf8'));
const { SETTINGS } = await import(pathToFileURL(join(loopvolDir, 'dist/config/settings.js')).href);

const fixed = new Set(config.env.map((e) => e.name));
for (const s of Object.values(SETTINGS)) {
  if (fixed.has(s.env)) continue;
  const shown = s.default === '' ? (s.defaultText ?? 'none') : s.default;
  config.env.push({
    name: s.env,
    description: `--${s.flag}: ${s.help} (default: ${shown})`,
    value: s.default,
    settable: ['value'],
  });
}
if (flags.includes('--host-network')) config.network = { type: 'host' };

/** <linux/capability.h> numbers of the capabilities plugin-config.json may ask for. */
const BITS = { CAP_SYS_ADMIN: 21, CAP_SYS_RESOURCE: 24 };

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
