"""The options reference: option entries (from lib.optionsToDocList) as Markdown, HTML and man.

The Nix side (docs/options.nix) is the one schema: it lists every option with its type
description, default, example and description. Python only renders, and refuses to render a
reference in which a visible option has no description.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from sonix import nix, paths, ui


@dataclass(frozen=True)
class Literal:
    """A default or example: Nix code (literalExpression) or Markdown (literalMD)."""

    kind: str
    text: str

    @classmethod
    def from_json(cls, value: Any) -> Literal | None:
        if value is None:
            return None
        return cls(kind=value["_type"], text=value["text"])


@dataclass(frozen=True)
class OptionDoc:
    name: str
    type: str
    description: str | None
    default: Literal | None
    example: Literal | None
    declarations: tuple[str, ...]
    read_only: bool

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> OptionDoc:
        return cls(
            name=entry["name"],
            type=entry["type"],
            description=entry.get("description"),
            default=Literal.from_json(entry.get("default")),
            example=Literal.from_json(entry.get("example")),
            declarations=tuple(entry.get("declarations", [])),
            read_only=bool(entry.get("readOnly", False)),
        )


def load_options(modules: Sequence[Path] = ()) -> list[OptionDoc]:
    """Evaluate docs/options.nix; fail, naming them, if visible options lack a description."""
    root = paths.source_root()
    file = root / "docs" / "options.nix"
    call_args = ""
    if modules:
        # Extra modules: for tests, and for documenting modules kept outside the tree.
        extra = " ".join(nix_path(m) for m in modules)
        call_args = f"modules = import {root}/modules/all-modules.nix ++ [ {extra} ];"
    result = nix.eval_expr_json(
        f"import {file} {{ {call_args} }}", what="evaluating the option documentation"
    )
    undocumented: list[str] = result["undocumented"]
    if undocumented:
        raise ui.die(
            f"{len(undocumented)} visible option(s) have no description: "
            + ", ".join(undocumented),
            hint="give each a `description` (or make it `internal = true` / `visible = false`)",
        )
    return [OptionDoc.from_json(e) for e in result["options"]]


def nix_path(path: Path) -> str:
    """A Nix path literal for an absolute path (quoted, so any file name works)."""
    return f'(/. + "{path.resolve()}")'


def _relative(declaration: str) -> str:
    root = str(paths.source_root())
    if declaration.startswith(root + "/"):
        return declaration[len(root) + 1 :]
    return re.sub(r"^/nix/store/[a-z0-9]{32}-[^/]*/", "", declaration)


def _literal_markdown(literal: Literal) -> str:
    if literal.kind == "literalMD":
        return literal.text
    if "\n" in literal.text:
        return f"\n\n```nix\n{literal.text.rstrip()}\n```"
    return f"`{literal.text}`"


def render_markdown(options: Iterable[OptionDoc]) -> str:
    out = ["# sonix configuration options", ""]
    for opt in options:
        out += [f"## `{opt.name}`", ""]
        out += [_option_roles((opt.description or "").strip()), ""]
        out += [f"*Type:* {opt.type}", ""]
        if opt.default is not None:
            out += [f"*Default:* {_literal_markdown(opt.default)}", ""]
        if opt.example is not None:
            out += [f"*Example:* {_literal_markdown(opt.example)}", ""]
        if opt.read_only:
            out += ["*Read-only.*", ""]
        if opt.declarations:
            decls = ", ".join(f"`{_relative(d)}`" for d in opt.declarations)
            out += [f"*Declared in:* {decls}", ""]
    return "\n".join(out).rstrip() + "\n"


def _anchor(name: str) -> str:
    return "opt-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _option_roles(markdown: str) -> str:
    # NixOS descriptions write {option}`a.b` for a reference to another option.
    return re.sub(r"\{option\}`([^`]+)`", lambda m: f"[`{m[1]}`](#{_anchor(m[1])})", markdown)


def render_html(options: Iterable[OptionDoc]) -> str:
    md = MarkdownIt("commonmark")
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>sonix configuration options</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}"
        "dt{font-weight:bold;margin-top:1.5em}code,pre{background:#f4f4f4}"
        ".meta{color:#444}</style>",
        "</head><body>",
        "<h1>sonix configuration options</h1>",
        "<dl>",
    ]
    for opt in options:
        parts.append(f'<dt id="{_anchor(opt.name)}"><code>{esc(opt.name)}</code></dt><dd>')
        parts.append(md.render(_option_roles(opt.description or "")))
        parts.append(f'<p class="meta"><em>Type:</em> {esc(opt.type)}</p>')
        for label, literal in (("Default", opt.default), ("Example", opt.example)):
            if literal is None:
                continue
            if literal.kind == "literalMD":
                body = md.render(literal.text)
            else:
                body = f"<pre><code>{esc(literal.text)}</code></pre>"
            parts.append(f'<div class="meta"><em>{label}:</em>{body}</div>')
        if opt.read_only:
            parts.append('<p class="meta"><em>Read-only.</em></p>')
        if opt.declarations:
            decls = ", ".join(f"<code>{esc(_relative(d))}</code>" for d in opt.declarations)
            parts.append(f'<p class="meta"><em>Declared in:</em> {decls}</p>')
        parts.append("</dd>")
    parts += ["</dl>", "</body></html>", ""]
    return "\n".join(parts)


def _roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in text.splitlines():
        # A line starting with . or ' would be a roff request.
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def render_manpage(options: Iterable[OptionDoc]) -> str:
    out = [
        '.TH "SONIX-OPTIONS" "5" "" "sonix" "sonix configuration options"',
        ".SH NAME",
        "sonix-options \\- the options of sonix configurations",
        ".SH DESCRIPTION",
        "A sonix machine is described by modules that set these options.",
        ".SH OPTIONS",
    ]
    for opt in options:
        out += [".TP", f"\\fB{_roff(opt.name)}\\fR"]
        if opt.description:
            plain = re.sub(r"\{option\}`([^`]+)`", r"\1", opt.description.strip())
            out.append(_roff(plain))
        out += [".RS", ".PP", f"\\fIType:\\fR {_roff(opt.type)}"]
        for label, literal in (("Default", opt.default), ("Example", opt.example)):
            if literal is not None:
                out += [".PP", f"\\fI{label}:\\fR", ".nf", _roff(literal.text), ".fi"]
        if opt.read_only:
            out += [".PP", "\\fIRead-only.\\fR"]
        if opt.declarations:
            decls = ", ".join(_relative(d) for d in opt.declarations)
            out += [".PP", f"\\fIDeclared in:\\fR {_roff(decls)}"]
        out.append(".RE")
    return "\n".join(out) + "\n"


def write_reference(options: Sequence[OptionDoc], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {
        "options.md": render_markdown(options),
        "options.html": render_html(options),
        "sonix-options.5": render_manpage(options),
    }
    written = []
    for name, text in outputs.items():
        target = out_dir / name
        # Write next to the target and rename: a reader never sees half a file.
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(target)
        written.append(target)
    return written
