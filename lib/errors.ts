// Small typed errors for control flow. A UserError's message is shown to the user as is;
// `field` names the input at fault so the API can answer 400 with field and reason.

export class UserError extends Error {
  readonly status: number = 400;
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export class NotFoundError extends UserError {
  override readonly status = 404;
  constructor(what: string, id: string | number) {
    super(`${what} not found: ${id}`);
    this.name = 'NotFoundError';
  }
}

export class ConflictError extends UserError {
  override readonly status = 409;
  constructor(message: string, field?: string) {
    super(message, field);
    this.name = 'ConflictError';
  }
}
