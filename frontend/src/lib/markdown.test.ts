import { describe, expect, it } from 'vitest';
import { renderMarkdown } from './markdown';

describe('renderMarkdown', () => {
  it('renders headings, emphasis, lists and code', () => {
    const html = renderMarkdown('# Plan\n\n*soon* and **now**\n\n- one\n- two\n\n`x < y`');
    expect(html).toContain('<h1>Plan</h1>');
    expect(html).toContain('<em>soon</em>');
    expect(html).toContain('<strong>now</strong>');
    expect(html).toContain('<li>one</li>');
    expect(html).toContain('<code>x &lt; y</code>');
  });

  it('shows raw HTML as text, never as elements', () => {
    const html = renderMarkdown('<img src=x onerror=alert(1)>\n\n<script>alert(2)</script>');
    const box = document.createElement('div');
    box.innerHTML = html;
    expect(box.querySelector('img, script')).toBeNull();
    expect(box.textContent).toContain('<img src=x onerror=alert(1)>');
  });

  it('drops script URLs in links and images', () => {
    const box = document.createElement('div');
    box.innerHTML = renderMarkdown('[click](javascript:alert(1)) ![pic](javascript:alert(2)) [ok](https://a.b)');
    for (const el of box.querySelectorAll('a, img')) {
      expect(el.getAttribute('href') ?? el.getAttribute('src') ?? '').not.toMatch(/^\s*javascript:/i);
    }
    expect(box.querySelectorAll('a')).toHaveLength(1);
  });

  it('opens links in a new tab without a handle on this window', () => {
    const box = document.createElement('div');
    box.innerHTML = renderMarkdown('[site](https://example.org)');
    const a = box.querySelector('a');
    expect(a?.getAttribute('href')).toBe('https://example.org');
    expect(a?.getAttribute('rel')).toBe('noopener noreferrer nofollow');
  });
});
