// Markdown to HTML for everything people and agents write (ticket bodies, comments, prompts).
// `marked` renders, then `sanitize-html` keeps only a strict allowlist: no raw scripts, no event
// handlers, no style, and links only to http(s), mailto or relative targets. The output is the
// only HTML a template may print unescaped.
import { Marked } from 'marked';
import sanitizeHtml from 'sanitize-html';

const marked = new Marked({ gfm: true, breaks: false, async: false });

const ALLOWED: sanitizeHtml.IOptions = {
  allowedTags: [
    'p', 'br', 'hr', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'blockquote', 'pre', 'code', 'em', 'strong', 'del', 's',
    'ul', 'ol', 'li', 'a', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'input', 'kbd', 'sup', 'sub', 'details', 'summary',
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
    input: (tagName, attribs) => (attribs.type === 'checkbox' ? { tagName, attribs: { type: 'checkbox', disabled: '', ...(attribs.checked !== undefined ? { checked: '' } : {}) } } : { tagName: 'span', attribs: {}, text: '' }),
  },
};

/** Sanitized HTML for a markdown text; safe to print unescaped. */
export function renderMarkdown(text: string): string {
  const html = marked.parse(text) as string;
  return sanitizeHtml(html, ALLOWED);
}
