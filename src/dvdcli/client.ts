import { request } from 'node:http';
import type { PluginAddress } from './discovery.js';

/** A plugin answered with an error (non-200 or a non-empty Err). */
export class PluginError extends Error {}

/**
 * One protocol call: POST /Method with a JSON body, as dockerd sends it. Resolves the parsed
 * answer; rejects with the plugin's Err, a transport error, or a timeout.
 */
export function callPlugin(
  address: PluginAddress,
  method: string,
  body: unknown,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const payload = body === undefined ? '' : JSON.stringify(body);
  const target =
    address.kind === 'unix' ? { socketPath: address.path } : { host: address.host, port: address.port };
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...target,
        path: `/${method}`,
        method: 'POST',
        headers: {
          Accept: 'application/vnd.docker.plugins.v1.2+json',
          'Content-Type': 'application/vnd.docker.plugins.v1.2+json',
          'Content-Length': Buffer.byteLength(payload),
        },
        timeout: timeoutMs,
      },
      (res) => {
        let raw = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          raw += chunk;
        });
        res.on('end', () => {
          let parsed: Record<string, unknown>;
          try {
            parsed = raw.trim() === '' ? {} : (JSON.parse(raw) as Record<string, unknown>);
          } catch {
            reject(
              new PluginError(`${method}: plugin answered ${res.statusCode} with a body that is not JSON`),
            );
            return;
          }
          const err = typeof parsed.Err === 'string' ? parsed.Err : '';
          if (res.statusCode !== 200 || err) {
            reject(new PluginError(`${method}: ${err || `plugin answered HTTP ${res.statusCode}`}`));
          } else resolve(parsed);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method}: no answer within ${timeoutMs / 1000} s`)));
    req.on('error', (err) =>
      reject(err.message.startsWith(method) ? err : new Error(`${method}: ${err.message}`)),
    );
    req.end(payload);
  });
}
