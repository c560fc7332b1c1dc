import { describe, expect, it } from 'vitest';
import type { ClusterGuard } from '../../src/core/cluster-guard.js';
import { VolumeError } from '../../src/core/errors.js';
import { mountAt } from '../../src/system/mountinfo.js';
import { silentLog } from '../helpers/int-log.js';
import { serviceCases } from '../helpers/int-service.js';
import { storageAvailable } from '../helpers/tools.js';

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mount']))(
  'a Mount the cluster fence overtook',
  () => {
    const fresh = serviceCases('int-mount-fenced');

    it('is undone and refused when the agent was fenced while the volume was being activated', async () => {
      let fencedMeanwhile = false;
      const guard: Pick<ClusterGuard, 'claimForCreate' | 'checkMount' | 'confirmMounted' | 'released'> = {
        async claimForCreate() {
          return { plan: 'empty', claim: { undo: async () => {} } };
        },
        async checkMount() {
          fencedMeanwhile = true; // the fence froze or shut down the mounts it saw: not this one yet
        },
        confirmMounted(name) {
          if (fencedMeanwhile)
            throw new VolumeError(`volume ${name} was fenced while it was being mounted`, 'conflict');
        },
        async released() {},
      };
      const { service, layout } = await fresh({ cluster: guard as ClusterGuard });
      await service.create('pg', { size: '64M' }, silentLog);
      await expect(service.mount('pg', 'c1', silentLog)).rejects.toThrow(/fenced while it was being mounted/);
      expect(await mountAt(layout.volume('pg').mountPoint)).toBeUndefined();
      await service.remove('pg', silentLog);
    });
  },
);
