"""Finding modules: an option of an on-demand module set without importing it is an error that
names the module and the `imports` line to add (modules/module-index.nix)."""

from __future__ import annotations

from pathlib import Path

from test_core_modules import error_of, evaluate

from sonix import nix, paths

MODULES = paths.source_root() / "modules"


def index() -> dict[str, list[str]]:
    value: dict[str, list[str]] = nix.eval_expr_json(
        f"(import {MODULES}/module-index.nix {{ }}).index"
    )
    return value


def test_setting_an_on_demand_option_without_its_import_names_the_module() -> None:
    message = error_of("{ services.nginx.enable = true; }")
    # The first line is NixOS's, word for word, so that it can be searched for.
    assert "The option `services.nginx' does not exist. Definition values:" in message
    assert "modules/services/nginx.nix" in message
    assert "imports = [ <sonix/modules/services/nginx.nix> ];" in message


def test_a_top_level_on_demand_option_names_its_module() -> None:
    message = error_of('{ updates.channel = "https://example.invalid/"; }')
    assert "The option `updates' does not exist." in message
    assert "imports = [ <sonix/modules/services/updates.nix> ];" in message


def test_a_typo_still_gets_close_names() -> None:
    message = error_of("{ services.journald.systemMaxUs = \"1M\"; }")
    assert "Did you mean `services.journald.systemMaxUse'?" in message
    assert "imports = [" not in message


def test_the_index_names_every_on_demand_module_with_its_option_prefixes() -> None:
    assert index() == {
        "services/firewall.nix": ["networking.firewall"],
        "services/fwupd.nix": ["hardware"],
        "services/nginx.nix": ["services.nginx"],
        "services/nspawn-containers.nix": ["containers"],
        "services/oci-containers.nix": ["oci"],
        "services/openssh.nix": ["services.openssh"],
        "services/provisioning.nix": ["provisioning"],
        "services/resolved.nix": ["services.resolved"],
        "services/timesyncd.nix": ["services.timesyncd"],
        "services/updates.nix": ["updates"],
    }


def test_every_module_in_the_tree_is_core_or_on_demand() -> None:
    """A new module file must be listed in module-list.nix (core) or on-demand.nix, else
    neither the options reference nor the error's hint know it."""
    listed = nix.eval_expr_json(
        f"map toString (import {MODULES}/all-modules.nix)"
    )
    infrastructure = {"all-modules.nix", "module-list.nix", "on-demand.nix", "module-index.nix"}
    on_disk = {
        str(p)
        for p in MODULES.rglob("*.nix")
        if p.name not in infrastructure and p.parent == MODULES / "services"
    }
    assert on_disk <= set(listed), sorted(on_disk - set(listed))
    assert all(Path(p).exists() for p in listed)


def test_a_configuration_outside_the_checkout_imports_modules_by_stable_name(
    tmp_path: Path,
) -> None:
    """`<sonix/...>` resolves to this checkout in every Nix call of the CLI (nix._run_nix),
    with NIX_PATH empty: no set-up in the configuration's own repository."""
    host = tmp_path / "host.nix"
    host.write_text(
        "{ ... }: {\n"
        "  imports = [ <sonix/examples/minimal.nix> <sonix/modules/services/nginx.nix> ];\n"
        "  services.nginx.enable = true;\n"
        "}\n"
    )
    assert not host.is_relative_to(paths.source_root())
    wants = evaluate(
        str(host), "systemd.targets.multi-user.wants"
    )
    assert "nginx.service" in wants


def test_inside_a_container_the_hint_names_the_module_too() -> None:
    """A container's configuration is evaluated with a prefix (containers.<name>.config): the
    first line keeps the full path, the hint the path inside the container."""
    message = error_of(
        "{ imports = [ <sonix/modules/services/nspawn-containers.nix> ];"
        " containers.web.config.services.nginx.enable = true; }"
    )
    assert "The option `containers.web.config.services.nginx' does not exist." in message
    assert "imports = [ <sonix/modules/services/nginx.nix> ];" in message
