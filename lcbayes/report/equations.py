"""A model's description with its equations, from the module docstring of the model (its one written form, also
rendered by the documentation), as HTML: LaTeX display blocks (``$$ ... $$``, a paragraph of their own) and inline
math (``$ ... $``) as MathML, which browsers render without scripts or fonts from the network; reST inline markup as
code."""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

# :role:`~package.module.Name` or :role:`text`: the name (its last part with ~), as code
ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")
CODE = re.compile(r"``([^`]+)``|`([^`]+)`")


def docstring_html(text: str) -> str:
    """``text`` (a docstring) as HTML paragraphs with MathML; raises ``ValueError`` for a display block that is not a
    paragraph of its own or an unpaired ``$``."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        block = paragraph.strip()
        if block.startswith("$$"):
            if not block.endswith("$$") or len(block) < 4 or "$$" in block[2:-2]:
                raise ValueError(f"a $$ display block must be a paragraph of its own: {block[:60]!r}")
            out.append(convert(block[2:-2].strip(), display="block"))
        else:
            out.append(f"<p>{_inline(' '.join(block.split()))}</p>")
    return "\n".join(out)


def _inline(text: str) -> str:
    parts = text.split("$")
    if len(parts) % 2 == 0:
        raise ValueError(f"unpaired $ in: {text[:80]!r}")
    return "".join(convert(part) if i % 2 else _markup(part) for i, part in enumerate(parts))


def _markup(text: str) -> str:
    """Plain text with reST roles and literals as <code>, everything else escaped."""
    def role(match: re.Match) -> str:
        name = match.group(2)
        return f"``{name.rsplit('.', 1)[-1] if match.group(1) else name}``"

    text = html.escape(ROLE.sub(role, text), quote=False)
    return CODE.sub(lambda m: f"<code>{m.group(1) or m.group(2)}</code>", text)
