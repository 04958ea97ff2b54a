// Markdown to HTML for everything people and agents write (ticket bodies, comments, prompts).
// `marked` renders, then `sanitize-html` keeps only a strict allowlist: no raw scripts, no event
// handlers, no style, and links only to http(s), mailto or relative targets. The output is the
// only HTML a template may print unescaped.
//
// Rendering never fails a page: history is append-only, so a comment that broke rendering would
// break its ticket page for good. marked recurses once per nesting level (6,000 `>` overflow the
// stack) and its emphasis, code span and link scans are superlinear in unmatched delimiters (an
// open upstream issue: 180 KB of `*a _b ` takes hours). So a text that is too long, nests too
// deep or takes too long to lex is shown as escaped plain text instead, and so is any other error.
import { getDefaults, Lexer, Parser, Tokenizer, type MarkedOptions, type Token, type TokensList } from 'marked';
import sanitizeHtml from 'sanitize-html';

/** Longer texts are shown as plain text (above the longest text the daemon stores: a 256 KiB prompt). */
export const MAX_MARKDOWN_CHARS = 300_000;
/** Nested quotes, list items, emphasis and links beyond this depth are shown as plain text. */
export const MAX_MARKDOWN_DEPTH = 32;
/**
 * CPU time (not wall time, so a busy machine does not count) after which lexing gives up and the
 * text is shown as plain text; an ordinary text of the largest allowed size takes well under 100 ms.
 */
const LEX_BUDGET_MS = 1000;
/** The clock is read every this many tokenizer steps (a read costs a system call). */
const CLOCK_EVERY = 64;

const ALLOWED: sanitizeHtml.IOptions = {
  allowedTags: [
    'p',
    'br',
    'hr',
    'h1',
    'h2',
    'h3',
    'h4',
    'h5',
    'h6',
    'blockquote',
    'pre',
    'code',
    'em',
    'strong',
    'del',
    's',
    'ul',
    'ol',
    'li',
    'a',
    'table',
    'thead',
    'tbody',
    'tr',
    'th',
    'td',
    'input',
    'kbd',
    'sup',
    'sub',
    'details',
    'summary',
  ],
  allowedAttributes: {
    a: ['href', 'title', 'rel'],
    code: ['class'],
    th: ['align'],
    td: ['align'],
    ol: ['start'],
    input: ['type', 'checked', 'disabled'],
  },
  allowedClasses: { code: [/^language-[a-z0-9+#-]+$/] },
  allowedSchemes: ['http', 'https', 'mailto'],
  allowedSchemesAppliedToAttributes: ['href'],
  allowProtocolRelative: false,
  disallowedTagsMode: 'escape',
  transformTags: {
    a: (tagName, attribs) => ({ tagName, attribs: { ...attribs, rel: 'noopener noreferrer nofollow' } }),
    // task-list checkboxes only; any other input becomes inert text
    input: (tagName, attribs) =>
      attribs.type === 'checkbox'
        ? { tagName, attribs: { type: 'checkbox', disabled: '', ...(attribs.checked !== undefined ? { checked: '' } : {}) } }
        : { tagName: 'span', attribs: {}, text: '' },
  },
};

class RenderLimit extends Error {}

/** The render in progress (rendering is synchronous, so one at a time). */
const limits = { depth: 0, steps: 0, deadline: 0 };

function cpuMs(): number {
  const used = process.cpuUsage();
  return (used.user + used.system) / 1000;
}

/** Runs one level of nested lexing: a quote, a list item, an emphasis or a link lexes its content again. */
function nested<T>(lex: () => T): T {
  if (++limits.depth > MAX_MARKDOWN_DEPTH + 1) throw new RenderLimit(`nested deeper than ${MAX_MARKDOWN_DEPTH} levels`);
  try {
    return lex();
  } finally {
    limits.depth--;
  }
}

/** marked's tokenizer with every step reading the clock now and then. */
class BoundedTokenizer extends Tokenizer {}
type Step = (this: Tokenizer, ...args: unknown[]) => unknown;
const steps = Tokenizer.prototype as unknown as Record<string, Step>;
for (const name of Object.getOwnPropertyNames(Tokenizer.prototype)) {
  const original = steps[name];
  if (name === 'constructor' || typeof original !== 'function') continue;
  (BoundedTokenizer.prototype as unknown as Record<string, Step>)[name] = function (...args) {
    if (++limits.steps % CLOCK_EVERY === 0 && cpuMs() > limits.deadline) throw new RenderLimit('took too long to render');
    return original.apply(this, args);
  };
}

/**
 * Before it lexes a run of inline text, marked masks its escapes, code spans, tags and links by
 * copying the whole run once per match: a run's cost is (matches x length). Runs above the budget
 * are refused before that starts. Ordinary paragraphs are far below it.
 */
const MASK_BUDGET = 20_000_000;

/** marked's lexer with its recursion counted and its inline masking bounded. */
class BoundedLexer extends Lexer {
  override blockTokens(src: string, tokens?: Token[], lastParagraphClipped?: boolean): Token[];
  override blockTokens(src: string, tokens?: TokensList, lastParagraphClipped?: boolean): TokensList;
  override blockTokens(src: string, tokens?: Token[] | TokensList, lastParagraphClipped?: boolean): Token[] | TokensList {
    return nested(() => super.blockTokens(src, tokens as Token[], lastParagraphClipped));
  }

  override inlineTokens(src: string, tokens?: Token[]): Token[] {
    let marks = 0;
    for (let i = 0; i < src.length; i++) {
      const c = src.charCodeAt(i);
      if (c === 0x5c || c === 0x60 || c === 0x3c || c === 0x5b) marks++; // \ ` < [
    }
    if (marks * src.length > MASK_BUDGET) throw new RenderLimit('too many escapes, code spans, tags or links in one paragraph');
    return nested(() => super.inlineTokens(src, tokens));
  }
}

const OPTIONS: MarkedOptions = { ...getDefaults(), gfm: true, breaks: false, async: false, tokenizer: new BoundedTokenizer() };

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** The text as it was written, escaped, in a block that keeps its line breaks. */
function plainText(text: string): string {
  return `<pre class="plain-text">${text.replace(/[&<>"']/g, (c) => ESCAPES[c]!)}</pre>`;
}

/** Sanitized HTML for a markdown text; safe to print unescaped. Never throws. */
export function renderMarkdown(text: string): string {
  if (text.length > MAX_MARKDOWN_CHARS) return plainText(text);
  limits.depth = 0;
  limits.steps = 0;
  limits.deadline = cpuMs() + LEX_BUDGET_MS;
  try {
    const tokens = new BoundedLexer(OPTIONS).lex(text);
    return sanitizeHtml(Parser.parse(tokens, OPTIONS) as string, ALLOWED);
  } catch {
    // RenderLimit, a stack overflow, or a bug in a dependency: the text itself is never lost
    return plainText(text);
  }
}
