"""What `mkdocs build --strict` cannot check: README.md's links into docs/, the code files the pages name (as
code spans, which MkDocs does not resolve), and that the settings reference lists every setting."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).parent.parent.parent
PAGES = sorted((ROOT / "docs").rglob("*.md"))
CODE_PATH = re.compile(r"`((?:gateway|models|rest|graphql_schema|web|ui|tests|bench|docs)/[\w./-]*\w)`")


def test_readme_links_lead_to_files_of_the_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert targets, "README.md links into docs/"
    missing = [target for target in targets if "://" not in target and not (ROOT / target).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_readme_stays_an_entry_page() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150, "move the text into a docs/ page"


def test_code_files_the_pages_name_exist() -> None:
    named = {
        (page.relative_to(ROOT), path)
        for page in [*PAGES, ROOT / "README.md"]
        for path in CODE_PATH.findall(page.read_text())
    }
    assert len(named) > 20  # the pattern still finds what the pages name
    missing = sorted((str(page), path) for page, path in named if not (ROOT / path.rstrip("/")).exists())
    assert not missing, f"pages name files that do not exist: {missing}"


def _variable(name: str) -> str:
    """The environment variable of a setting: TRACKING_ and its name, or its alias (OpenTelemetry's OTEL_*)."""
    alias = Settings.model_fields[name].validation_alias
    return alias.upper() if isinstance(alias, str) else f"{ENV_PREFIX}{name.upper()}"


def test_the_settings_reference_lists_every_setting() -> None:
    reference = (ROOT / "docs" / "reference" / "settings.md").read_text()
    variables = [_variable(name) for name in Settings.model_fields]
    assert "OTEL_SERVICE_NAME" in variables, "aliases are read as the variables they are"
    missing = [variable for variable in variables if f"`{variable}`" not in reference]
    assert not missing, f"docs/reference/settings.md lacks {missing}"
