"""Write docs/cli.md, the CLI reference, from the click commands themselves.

    python docs/cli_reference.py          # rewrite docs/cli.md
    python docs/cli_reference.py --check  # exit 1 if docs/cli.md is stale (tests/test_docs.py runs this)

Every command's ``--help`` text at a fixed width of 100 columns, so the file
is the same on every machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tagger.cli import main

PAGE = Path(__file__).with_name("cli.md")
WIDTH = 100


def help_text(command: click.Command, name: str, parent: click.Context | None = None) -> str:
    ctx = click.Context(command, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    return command.get_help(ctx)


def reference() -> str:
    root = click.Context(main, info_name="terc-tag", terminal_width=WIDTH, max_content_width=WIDTH)
    parts = ["# Command-line reference", "",
             "Generated from the commands' own `--help` by `python docs/cli_reference.py`; "
             "`tests/test_docs.py` fails when it is stale.", "",
             "```text", help_text(main, "terc-tag"), "```"]
    for name in sorted(main.commands):
        parts += ["", f"## `terc-tag {name}`", "", "```text", help_text(main.commands[name], name, root), "```"]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    text = reference()
    if "--check" in sys.argv[1:]:
        if PAGE.read_text(encoding="utf-8") != text:
            sys.exit(f"{PAGE} is stale: run python docs/cli_reference.py")
    else:
        PAGE.write_text(text, encoding="utf-8")
