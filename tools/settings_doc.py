"""Print the consumer's settings as a Markdown table (README's "Configuration" section).

    python -m tools.settings_doc            # print the table
    python -m tools.settings_doc --write    # rewrite it in README.md between the markers
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import SecretStr

from consumer.settings import SECRET_FIELDS, Settings, env_name

BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"
README = Path(__file__).resolve().parents[1] / "README.md"


def table() -> str:
    lines = ["| Environment variable | Flag | Default | Meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            default = "(secret, empty)" if not default.get_secret_value() else "(secret, set)"
        env = f"`{env_name(name)}`" + (f" or `{env_name(name)}_FILE`" if name in SECRET_FIELDS else "")
        desc = (field.description or "").replace("|", "\\|")
        lines.append(f"| {env} | `--{name.replace('_', '-')}` | `{default}` | {desc} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.settings_doc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the table in README.md")
    args = parser.parse_args(argv)
    if not args.write:
        print(table())
        return 0
    text = README.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{table()}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
