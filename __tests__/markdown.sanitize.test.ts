// Markdown rendering keeps formatting and drops everything that could run: scripts, event
// handlers, javascript:/data: links, iframes, styles.
import { renderMarkdown } from '../lib/markdown.js';

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
