// The typed face of lib/shared/ticketRules.cjs, the one copy of the ticket rules that the agents' CLI
// (bin/ticket.cjs) shares with the daemon. Loaded from the package root, so the sources (tests) and
// the build in dist/ read the same file.
import path from 'node:path';
import { createRequire } from 'node:module';
import { packageRoot } from './packageRoot.js';

interface TicketRules {
  TICKET_KEY: RegExp;
  LIMITS: { readonly title: number; readonly body: number; readonly comment: number; readonly tag: number; readonly tags: number };
  FREE_COMMENT_TYPES: readonly ['comment', 'journal', 'block', 'complete'];
  SEVERITIES: readonly ['critical', 'high', 'medium', 'low'];
  HUMAN: 'human';
  DONE: 'done';
  LIVE_RUN_STATUSES: readonly ['queued', 'running'];
  MARK_DUE_SQL: string;
  wakesOnMove(move: { to: string; toAgentColumn: boolean; byRun: boolean }): boolean;
  resolveHome(env?: NodeJS.ProcessEnv): string;
  hashRunSecret(secret: string): string;
}

export const ticketRulesFile = path.join(packageRoot, 'lib', 'shared', 'ticketRules.cjs');
const rules = createRequire(import.meta.url)(ticketRulesFile) as TicketRules;

export const { TICKET_KEY, LIMITS, FREE_COMMENT_TYPES, SEVERITIES, HUMAN, DONE, LIVE_RUN_STATUSES, MARK_DUE_SQL } = rules;
export const { wakesOnMove, resolveHome, hashRunSecret } = rules;
