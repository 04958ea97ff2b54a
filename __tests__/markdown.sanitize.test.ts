// Markdown rendering keeps formatting and drops everything that could run: scripts, event
// handlers, javascript:/data: links, iframes, styles.
import { MAX_MARKDOWN_DEPTH, renderMarkdown } from '../lib/markdown.js';

test('keeps ordinary markdown', () => {
  const html = renderMarkdown('# Title\n\n**bold** `code` [link](https://example.com)\n\n- [x] done\n\n```js\nconst a = 1 < 2;\n```');
  expect(html).toContain('<h1>Title</h1>');
  expect(html).toContain('<strong>bold</strong>');
  expect(html).toContain('<a href="https://example.com" rel="noopener noreferrer nofollow">link</a>');
  expect(html).toContain('<input type="checkbox" disabled checked />');
  expect(html).toContain('<code class="language-js">const a = 1 &lt; 2;');
});

test.each([
  ['<script>alert(1)</script>', /<script/i],
  ['<img src=x onerror=alert(1)>', /<img/i],
  ['<svg onload=alert(1)>', /<svg/i],
  ['[x](javascript:alert(1))', /javascript:/i],
  ['<a href="JaVaScRiPt:alert(1)">x</a>', /href=/i],
  ['[x](data:text/html,<script>alert(1)</script>)', /href=/i],
  ['<iframe src="https://evil.example"></iframe>', /<iframe/i],
  ['<p style="background:url(x)" onclick="x()">hi</p>', /style=|onclick=/i],
  ['<input type="text" onfocus="x()" autofocus>', /<input/i],
  ['<details open ontoggle=alert(1)>x</details>', /ontoggle=/i],
])('drops %s', (input, forbidden) => {
  expect(renderMarkdown(input)).not.toMatch(forbidden);
});

// Rendering never throws: history is append-only, so a text that broke rendering would break its
// ticket page for good. Too deep, too long or too slow to lex: the text is shown escaped, whole.
const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const plain = (text: string) => `<pre class="plain-text">${text.replace(/[&<>"']/g, (c) => ENTITIES[c]!)}</pre>`;

test.each([
  ['6,000 nested quotes', '>'.repeat(6000) + ' deep'],
  ['6,000 nested quotes with spaces', '> '.repeat(6000) + 'deep'],
  ['6,000 nested list items', '- '.repeat(6000) + 'deep'],
  ['6,000 nested ordered items', '1. '.repeat(6000) + 'deep'],
  ['quotes and lists interleaved', '> - '.repeat(3000) + 'deep'],
  ['6,000 nested emphasis', '*'.repeat(6000) + 'deep' + '*'.repeat(6000)],
  ['6,000 nested links', '['.repeat(6000) + 'deep' + ']'.repeat(6000) + '(https://example.com)'],
  ['a list indented 300 levels', Array.from({ length: 300 }, (_, i) => '  '.repeat(i) + '- deep').join('\n')],
  ['unmatched emphasis delimiters (hours of lexing unbounded)', '*a _b '.repeat(30_000)],
  ['unclosed links (quadratic masking)', '[a]('.repeat(50_000)],
  ['backslash escapes (quadratic masking)', '\\*'.repeat(100_000)],
  ['code spans (quadratic masking)', '`a` '.repeat(50_000)],
  ['longer than the cap', 'x'.repeat(300_001)],
])('%s: shown as escaped plain text', (_name, text) => {
  expect(renderMarkdown(text)).toBe(plain(text));
});

test('the plain-text fallback escapes markup', () => {
  const text = '>'.repeat(6000) + ' <script>alert(1)</script> & "q"';
  const html = renderMarkdown(text);
  expect(html).not.toMatch(/<script/i);
  expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;');
});

test('nesting up to the cap and long ordinary texts still render as markdown', () => {
  const quoted = '<blockquote>\n'.repeat(MAX_MARKDOWN_DEPTH) + '<p>quoted</p>\n' + '</blockquote>\n'.repeat(MAX_MARKDOWN_DEPTH);
  expect(renderMarkdown('> '.repeat(MAX_MARKDOWN_DEPTH) + 'quoted')).toBe(quoted);
  const deeper = '> '.repeat(MAX_MARKDOWN_DEPTH + 1) + 'quoted';
  expect(renderMarkdown(deeper)).toBe(plain(deeper));
  // a long agent journal: sections of prose with the usual inline markup, a list, a table and code
  const prose =
    'The daemon reads the ticket, runs the *agent*, records `tokens` and cost; see [the docs](https://example.com/docs). '.repeat(4);
  const table = '| a | b |\n|---|---|\n| 1 | 2 |\n\n';
  const section = `## Step\n\n${prose}\n\n${prose}\n\n- one **bold** item\n- two\n\n${table}\`\`\`js\nconst a = 1;\n\`\`\`\n\n`;
  const count = Math.floor(190_000 / section.length);
  const html = renderMarkdown(section.repeat(count));
  expect(html.startsWith('<h2>Step</h2>')).toBe(true);
  expect(html.match(/<em>agent<\/em>/g)).toHaveLength(count * 8);
  expect(html.match(/<table>/g)).toHaveLength(count);
});
