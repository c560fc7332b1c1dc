/**
 * Runs `attempt` until it succeeds, retrying every 250 ms for up to `ms` while `transient` says
 * the failure may pass (the kernel finishing a loop teardown, a mount namespace letting go).
 * The last error is thrown once the time is up.
 */
export async function retryFor<T>(
  ms: number,
  attempt: () => Promise<T>,
  transient: (err: unknown) => boolean = () => true,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (!transient(err) || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}
