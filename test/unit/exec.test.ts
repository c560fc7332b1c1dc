import { getPriority } from 'node:os';
import { describe, expect, it } from 'vitest';
import { CommandError, run, runTool } from '../../src/system/exec.js';

/** The tool runner on real (tiny) processes: what callers rely on besides the exit code. */
describe('runTool and run', () => {
  it('returns the exit code and trimmed output, in the C locale', async () => {
    const result = await runTool('sh', ['-c', 'echo " out "; echo err >&2; echo "$LC_ALL"; exit 3']);
    expect(result).toEqual({ exitCode: 3, stdout: 'out \nC', stderr: 'err' });
  });

  it('passes arguments as a vector, never through a shell', async () => {
    expect(await run('printf', ['%s|', 'a b', '$(id)', ';x'])).toBe('a b|$(id)|;x|');
  });

  it('throws a CommandError with stderr for a non-zero exit, unless the code is allowed', async () => {
    const failing = run('sh', ['-c', 'echo broken >&2; exit 4']);
    await expect(failing).rejects.toBeInstanceOf(CommandError);
    await expect(failing).rejects.toMatchObject({ exitCode: 4, stderr: 'broken' });
    await expect(failing).rejects.toThrow(/sh -c .* failed \(exit 4\): broken/);
    await expect(run('sh', ['-c', 'exit 1'], { alsoSuccess: [1] })).resolves.toBe('');
  });

  it('reports a program that cannot start', async () => {
    await expect(runTool('loopvol-no-such-tool', [])).rejects.toThrow(
      /loopvol-no-such-tool failed \(.*ENOENT.*\)/,
    );
  });

  it('kills a tool that outlives its timeout and says so', async () => {
    const started = Date.now();
    await expect(runTool('sleep', ['30'], { timeoutMs: 200 })).rejects.toThrow(
      /sleep 30 failed \(timed out\)/,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('runs at the niceness asked for', async () => {
    expect(await run('sh', ['-c', 'sleep 0.3; nice'], { niceness: 19 })).toBe('19');
    expect(await run('nice', [])).toBe(String(getPriority()));
  });
});
