"""MkDocs hook: pages whose content comes from the code itself, so no table is kept by hand.

``<!-- generated: cli -->`` becomes the reference of every ``mosaic-it`` command, read from the
argument parser (:func:`mosaic_it.cli.main.build`); ``<!-- generated: exit-codes -->`` the exit
statuses the command line defines.
"""

from __future__ import annotations

import argparse
import re
from importlib import resources
from typing import Any

from mosaic_it.cli.main import build


def _flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest.upper()}`"
    shown = []
    for flag in action.option_strings:
        if action.nargs == 0:
            shown.append(f"`{flag}`")
        else:
            metavar = action.metavar or action.dest.upper()
            if isinstance(metavar, tuple):
                metavar = " ".join(metavar)
            shown.append(f"`{flag} {metavar}`")
    return ", ".join(shown)


def _default(action: argparse.Action) -> str:
    default = action.default
    if default is None or default is argparse.SUPPRESS or action.nargs == 0:
        return ""
    if isinstance(default, (list, tuple)):
        default = " ".join(str(d) for d in default)
    return f"`{default}`"


def _cell(text: Any) -> str:
    return " ".join(str(text or "").split()).replace("|", "\\|")


def cli_reference() -> str:
    parser, commands = build()
    out = [
        "Generated from the argument parser at build time: what `mosaic-it COMMAND --help` "
        "prints, as tables.",
        "",
    ]
    for name, (command, arguments) in commands.items():
        out += [f"## `mosaic-it {name}`", "", _cell(command.description or command.help), ""]
        out += ["| argument | default | meaning |", "| --- | --- | --- |"]
        for action in arguments.actions:
            if action.help == argparse.SUPPRESS:
                continue
            choices = ""
            if action.choices and not isinstance(action.choices, dict):
                choices = " (one of " + ", ".join(f"`{c}`" for c in action.choices) + ")"
            params = dict(vars(action), prog=f"mosaic-it {name}")
            help_text = action.help % params if action.help else ""
            out.append(f"| {_flags(action)} | {_default(action)} | {_cell(help_text)}{choices} |")
        out.append("")
    return "\n".join(out)


def schema(name: str) -> str:
    text = resources.files("mosaic_it").joinpath(f"data/schemas/{name}.schema.json").read_text()
    return f"`mosaic_it/data/schemas/{name}.schema.json`:\n\n```json\n{text.strip()}\n```\n"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if "<!-- generated: cli -->" in markdown:
        markdown = markdown.replace("<!-- generated: cli -->", cli_reference())
    return re.sub(r"<!-- generated: schema (\w+) -->", lambda m: schema(m.group(1)), markdown)
