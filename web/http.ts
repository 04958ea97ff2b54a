// Helpers shared by every route: reading a JSON object body and the author of a human action.
import type { Request } from 'express';
import { UserError } from '../lib/errors.js';

export function bodyObject(req: Request): Record<string, unknown> {
  const body: unknown = req.body;
  if (body === undefined) return {};
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new UserError('request body must be a JSON object', 'body');
  return body as Record<string, unknown>;
}

export function optionalString(body: Record<string, unknown>, field: string): string | undefined {
  const v = body[field];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new UserError(`${field} must be a string`, field);
  return v;
}

export function requiredString(body: Record<string, unknown>, field: string): string {
  const v = optionalString(body, field);
  if (v === undefined) throw new UserError(`${field} is required`, field);
  return v;
}

export function optionalBoolean(body: Record<string, unknown>, field: string): boolean | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new UserError(`${field} must be true or false`, field);
  return v;
}

/** Positive integer from a query string, within bounds. */
export function queryInt(value: unknown, field: string, fallback: number, max: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new UserError(`${field} must be a whole number from 0 to ${max}`, field);
  return n;
}
