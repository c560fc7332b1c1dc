/** The filesystems a volume can have; every layer names them, so the type lives at the bottom. */
export type FsType = 'ext4' | 'xfs';
