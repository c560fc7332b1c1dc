import { z } from 'zod';

/**
 * Volume names become directory names under the data root: the first character is alphanumeric
 * and no character is a slash, so ".", ".." and traversal cannot be expressed.
 */
export const volumeName = z
  .string({ error: 'Name is required and must be a string' })
  .max(255, 'volume name is longer than 255 characters')
  .regex(
    /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/,
    'volume name must be 2-255 characters of letters, digits, "_", "." and "-", starting with a letter or digit',
  );
