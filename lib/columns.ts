// The two columns every board has, whatever its agent columns: tickets start in (and come back to)
// HUMAN, the person's column, and end in DONE, where a ticket's branch is merged. HUMAN is also the
// author and actor name of what a person does through the web page or the API. Defined with the
// rules bin/ticket.cjs shares (lib/shared/ticketRules.cjs).
export { HUMAN, DONE } from './ticketRules.js';
