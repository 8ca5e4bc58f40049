import { SignetError } from '../util/errors';

export type BoardErrorCode = 'E_BOARD_UNKNOWN' | 'E_BOARD_INVALID';

export class BoardError extends SignetError {
  override readonly code: BoardErrorCode;
  constructor(code: BoardErrorCode, message: string, hint: string) {
    super(code, message, hint);
    Object.setPrototypeOf(this, BoardError.prototype);
    this.code = code;
    this.name = 'BoardError';
  }
}
