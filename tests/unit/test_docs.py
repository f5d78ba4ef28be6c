"""The options reference: evaluation through Nix, and the three renderings."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sonix import docs, ui

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def options() -> list[docs.OptionDoc]:
    return docs.load_options([FIXTURES / "documented-module.nix"])


def by_name(options: list[docs.OptionDoc]) -> dict[str, docs.OptionDoc]:
    return {o.name: o for o in options}


def test_entries_are_sorted_and_hide_invisible_options(options: list[docs.OptionDoc]) -> None:
    names = [o.name for o in options]
    assert names == sorted(names)
    assert "hidden" not in names
    assert "docsTest.web.sites.<name>.port" in names


def test_entry_fields(options: list[docs.OptionDoc]) -> None:
    host = by_name(options)["docsTest.hostName"]
    assert host.type == "string"
    assert host.default == docs.Literal("literalExpression", '"sonix"')
    assert host.example == docs.Literal("literalExpression", '"web-1"')
    assert host.declarations[0].endswith("documented-module.nix")
    domain = by_name(options)["docsTest.domain"]
    assert domain.default == docs.Literal("literalMD", "no domain")
    assert by_name(options)["docsTest.stateVersion"].read_only


def test_undocumented_options_fail_by_name() -> None:
    with pytest.raises(ui.SonixError) as error:
        docs.load_options([FIXTURES / "undocumented-module.nix"])
    expected = "2 visible option(s) have no description: undocTest.alpha, undocTest.beta.gamma"
    assert expected in str(error.value)


def test_markdown(options: list[docs.OptionDoc]) -> None:
    text = docs.render_markdown(options)
    assert "## `docsTest.hostName`" in text
    assert "*Type:* 16 bit unsigned integer; between 0 and 65535 (both inclusive)" in text
    assert "[`docsTest.domain`](#opt-docsTest.domain)" in text
    assert "```nix\n{ example = { port = 8080; }; }\n```" in text


def test_html(options: list[docs.OptionDoc]) -> None:
    text = docs.render_html(options)
    assert '<dt id="opt-docsTest.hostName"><code>docsTest.hostName</code></dt>' in text
    assert "<strong>if any</strong>" in text
    assert '<a href="#opt-docsTest.domain"><code>docsTest.domain</code></a>' in text


def test_manpage_renders_with_groff(options: list[docs.OptionDoc], tmp_path: Path) -> None:
    page = tmp_path / "sonix-options.5"
    page.write_text(docs.render_manpage(options))
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed (Debian: groff-base)")
    # -P -cbou: plain text, no overstrike bold/underline, so the text can be searched.
    result = subprocess.run(
        ["groff", "-man", "-Tutf8", "-P", "-cbou", "-ww", str(page)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    assert "docsTest.hostName" in result.stdout
    assert "Type: string" in result.stdout


def test_write_reference(options: list[docs.OptionDoc], tmp_path: Path) -> None:
    written = docs.write_reference(options, tmp_path / "out")
    assert sorted(p.name for p in written) == ["options.html", "options.md", "sonix-options.5"]
    assert not list((tmp_path / "out").glob("*.tmp"))
