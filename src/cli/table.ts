import Table from 'cli-table3';

/** A table as docker prints them: a header row, columns two spaces apart, no borders or colours. */
export function plainTable(head: string[]): Table.Table {
  const none = '';
  return new Table({
    head,
    style: { head: [], border: [], compact: true },
    chars: {
      top: none,
      'top-mid': none,
      'top-left': none,
      'top-right': none,
      bottom: none,
      'bottom-mid': none,
      'bottom-left': none,
      'bottom-right': none,
      left: none,
      'left-mid': none,
      mid: none,
      'mid-mid': none,
      right: none,
      'right-mid': none,
      middle: '  ',
    },
  });
}
