// Error classes shared by every part of Cohort. Callers branch on the class, never on the message.

export interface CohortErrorOptions {
  cause?: unknown
}

/** Base class: every Cohort error has a stable `name` and an optional `cause`. */
export class CohortError extends Error {
  override name = 'CohortError'
  constructor(message: string, options: CohortErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
  }
}

/** Bytes that do not decode, or a decoded value that does not match its message definition. */
export class ProtocolError extends CohortError {
  override name = 'ProtocolError'
}

/** A signature that does not verify, or a key that is not trusted. */
export class SignatureError extends CohortError {
  override name = 'SignatureError'
}

/** Something signed whose validity window has passed (or has not begun). */
export class ExpiredError extends CohortError {
  override name = 'ExpiredError'
}

/** Job parameters or unit data that a job type refuses; `field` names the offending field. */
export class ValidationError extends CohortError {
  override name = 'ValidationError'
  readonly field: string
  constructor(field: string, message: string, options: CohortErrorOptions = {}) {
    super(`${field}: ${message}`, options)
    this.field = field
  }
}

/** A value larger than the limit set for it. */
export class LimitError extends CohortError {
  override name = 'LimitError'
}

/** An operation that did not finish in the time allowed. */
export class TimeoutError extends CohortError {
  override name = 'TimeoutError'
}

/** A failure that retrying cannot fix (a bad unit, an unknown job type). */
export class UnrecoverableError extends CohortError {
  override name = 'UnrecoverableError'
}

/** Options given to a `createX(init)` factory that are out of range or of the wrong type. */
export class ConfigError extends CohortError {
  override name = 'ConfigError'
}
