// A small Markdown renderer for the web chat's answers. It builds DOM nodes and sets only
// their text, never HTML, so nothing a model writes can inject markup or script: fenced code
// blocks, headings, lists, paragraphs, and inline code, bold and italics.

/** Renders `text` into `container`, replacing what was there. */
export function renderMarkdown(container, text) {
  container.replaceChildren(...blocks(text));
}

function blocks(text) {
  const out = [];
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*(```|~~~)\s*([\w+-]*)\s*$/);
    if (fence) {
      const code = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) code.push(lines[i++]);
      i += 1; // the closing fence (or the end of a stream still arriving)
      const pre = document.createElement("pre");
      const element = document.createElement("code");
      if (fence[2]) element.dataset.language = fence[2];
      element.textContent = code.join("\n");
      pre.append(element);
      out.push(pre);
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      const element = document.createElement(`h${Math.min(6, heading[1].length + 2)}`);
      element.append(...inline(heading[2]));
      out.push(element);
      i += 1;
      continue;
    }
    const item = /^\s*([-*+]|\d+[.)])\s+/;
    if (item.test(line)) {
      const ordered = /^\s*\d/.test(line);
      const list = document.createElement(ordered ? "ol" : "ul");
      while (i < lines.length && item.test(lines[i])) {
        const li = document.createElement("li");
        li.append(...inline(lines[i].replace(item, "")));
        list.append(li);
        i += 1;
      }
      out.push(list);
      continue;
    }
    if (line.trim() === "") {
      i += 1;
      continue;
    }
    const paragraph = [];
    while (i < lines.length && lines[i].trim() !== "" && !item.test(lines[i]) && !/^(#{1,6})\s/.test(lines[i])
      && !/^\s*(```|~~~)/.test(lines[i])) {
      paragraph.push(lines[i++]);
    }
    const p = document.createElement("p");
    paragraph.forEach((part, index) => {
      if (index > 0) p.append(document.createElement("br"));
      p.append(...inline(part));
    });
    out.push(p);
  }
  return out;
}

/** `code`, **bold** and *italic* (or _italic_) within a line, as text nodes. */
function inline(text) {
  const nodes = [];
  const pattern = /(`[^`]+`|\*\*[^*]+\*\*|\*[^*\s][^*]*\*|_[^_\s][^_]*_)/g;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
    const token = match[0];
    let element;
    if (token.startsWith("`")) {
      element = document.createElement("code");
      element.textContent = token.slice(1, -1);
    } else if (token.startsWith("**")) {
      element = document.createElement("strong");
      element.textContent = token.slice(2, -2);
    } else {
      element = document.createElement("em");
      element.textContent = token.slice(1, -1);
    }
    nodes.push(element);
    last = match.index + token.length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}
