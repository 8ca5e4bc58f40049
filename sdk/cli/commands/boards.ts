import { listBoards, loadBoard } from '../../board';
import { JSON_OPTION, onePositional, type Command } from '../command';

export const boardsList: Command = {
  path: ['boards'],
  summary: 'list the boards Signet knows, or show one (`signet boards show <id>`)',
  options: { ...JSON_OPTION },
  async run(ctx) {
    const boards = listBoards().map((id) => loadBoard(id));
    if (ctx.json) {
      ctx.out(JSON.stringify(boards, null, 2));
      return;
    }
    for (const b of boards) ctx.out(`${b.id.padEnd(18)} ${b.arch.padEnd(6)} ${b.hypervisor.padEnd(4)} ${b.kind.padEnd(9)} ${b.name}`);
  },
};

export const boardsShow: Command = {
  path: ['boards', 'show'],
  summary: 'print one board definition (validated)',
  args: '<board-id>',
  options: {},
  async run(ctx) {
    ctx.out(JSON.stringify(loadBoard(onePositional(ctx, 'board id')), null, 2));
  },
};
