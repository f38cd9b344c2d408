"""The README stays true to the code: every setting is documented."""

from pathlib import Path

from services.common.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_documents_every_setting() -> None:
    text = README.read_text()
    missing = [f"QUNYUN_{name.upper()}" for name in Settings.model_fields if f"`QUNYUN_{name.upper()}`" not in text]
    assert missing == [], f"document these settings in README.md: {missing}"
