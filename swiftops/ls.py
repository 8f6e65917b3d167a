"""`python -m swiftops.ls`: what can be run — named sweeps, experiments, config groups, launchers
and sweepers, each with the first line of its description (like `tune ls`); and the generated
parts of `python -m swiftops --help` (conf/hydra/help/swiftops.yaml), from the same files."""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from pathlib import Path

from swiftops.paths import PACKAGE_DIR, conf_dir, sweeps_dir

# Hydra's own launcher and sweeper, the defaults; the others are files and plugins of this project
HYDRA_BUILTINS = {
    "hydra/launcher": "Hydra's own: the jobs one after another, in this process (the default).",
    "hydra/sweeper": "Hydra's own: every combination of the swept values (the default).",
}
# the parts of conf/hydra/ that are chosen to run jobs (help/ only words the --help text)
HYDRA_RUNNERS = ("launcher", "sweeper")


def describe(path: Path, width: int = 100) -> str:
    """The first sentence of a config's leading comment (its `# python -m ...` line skipped),
    shortened to about `width` characters at a word boundary."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text.startswith("#"):
            if text or words:
                break
            continue
        text = text.lstrip("#").strip()
        if text.startswith(("@package", "python -m")):
            continue
        if not text:
            if words:
                break  # the first paragraph ends at an empty comment line
            continue
        words.extend(text.split())
    return first_sentence(" ".join(words), width)


def first_sentence(paragraph: str, width: int = 100) -> str:
    """The first sentence of a paragraph, shortened to about `width` characters at a word boundary."""
    sentence = re.split(r"(?<=[.!?])(?<!e\.g\.)(?<!i\.e\.)\s", paragraph.strip(), maxsplit=1)[0]
    if len(sentence) <= width:
        return sentence
    return sentence[:width].rsplit(" ", 1)[0].rstrip(",;:(") + " ..."


def plugin_options(group: str) -> list[tuple[str, str]]:
    """(option, description) of each option a plugin in hydra_plugins/ registers in `group`,
    described by the first sentence of its module's docstring (its *_sweeper.py or *_launcher.py)."""
    found = []
    root = PACKAGE_DIR.parent / "hydra_plugins"
    pattern = re.compile(rf'group="{re.escape(group)}",\s*name="(\w+)"')
    for source in sorted(root.glob("*/*.py")):
        for name in pattern.findall(source.read_text(encoding="utf-8")):
            kind = group.rsplit("/", 1)[-1]
            module = next(iter(sorted(source.parent.glob(f"*_{kind}.py"))), source)
            doc = ast.get_docstring(ast.parse(module.read_text(encoding="utf-8"))) or ""
            found.append((name, first_sentence(" ".join(doc.split()))))
    return found


def hydra_entries() -> list[tuple[str, str]]:
    """(how to use it, description) of every launcher and sweeper: Hydra's own basic ones, the
    presets in conf/hydra/launcher/ and the options the plugins in hydra_plugins/ register."""
    entries = []
    for kind in HYDRA_RUNNERS:
        group = f"hydra/{kind}"
        entries.append((f"{group}=basic", HYDRA_BUILTINS[group]))
        for path in sorted((conf_dir() / "hydra" / kind).glob("*.yaml")):
            use = f"{group}={path.stem}"
            entries.append((use, describe(path).removeprefix(f"{use}: ")))
        entries += [(f"{group}={name}", text) for name, text in plugin_options(group)]
    return entries


def listing() -> list[tuple[str, list[tuple[str, str]]]]:
    """(section, [(how to use it, description)]) for sweeps, experiments and every group."""
    sections = [
        ("named sweeps", [(f"+sweep={p.stem}", describe(p)) for p in sorted(sweeps_dir().glob("*.yaml"))])
    ]
    root = conf_dir()
    groups = sorted(p for p in root.iterdir() if p.is_dir())
    for group in sorted(groups, key=lambda p: (p.name != "experiment", p.name)):
        if group.name == "hydra":
            sections.append(("hydra: launchers and sweepers (conf/hydra/, hydra_plugins/)", hydra_entries()))
            continue
        entries = [(f"{group.name}={p.stem}", describe(p)) for p in sorted(group.glob("*.yaml"))]
        sections.append((f"{group.name} (conf/{group.name}/)", entries))
    return sections


KNOB = re.compile(r"^(?P<indent> *)(?P<key>[a-z_]+):(?P<value>[^#]*?)\s*(?:#(?P<comment>.*))?$")
HEADING = re.compile(r"^# ---- (?P<text>.+?) ----")
CONTINUATION = re.compile(r"^ +#  ")


def config_knobs(path: Path | None = None) -> list[tuple[str, str, str, str]]:
    """(heading, key, default, meaning) of every key of the primary config (conf/config.yaml),
    nested ones dotted (watchdog.enabled), read from the file's own comments: the meaning is the
    first sentence of a key's comment (continuation lines included), else the heading it is under.
    The defaults list and the hydra node are left out."""
    path = path or conf_dir() / "config.yaml"
    knobs: list[list[str]] = []
    heading, section, skip, lead = "", "", False, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if found := HEADING.match(line):
            heading = found["text"]
            continue
        if CONTINUATION.match(line) and knobs and knobs[-1][4] == "open":
            knobs[-1][3] += " " + line.strip().lstrip("#").strip()
            continue
        found = KNOB.match(line)
        if found is None:
            if knobs:
                knobs[-1][4] = "closed"
            continue
        if knobs:
            knobs[-1][4] = "closed"
        key, value, comment = found["key"], found["value"].strip(), found["comment"] or ""
        shared = comment.startswith("   ") and knobs  # `#   ...`: this key goes with the one above
        comment = comment.strip()
        if not found["indent"]:
            section, skip = key, key in ("defaults", "hydra")
            if not value:  # a section: its keys follow, indented
                continue
            section = ""
        if skip:
            continue
        dotted = f"{section}.{key}" if found["indent"] and section else key
        if shared:
            knobs[lead][3] += " " + comment
            comment = f"see {knobs[lead][1]}"
        else:
            lead = len(knobs)
        knobs.append([heading, dotted, value, comment, "open"])
    return [(h, k, v, first_sentence(c, 90) if c else h) for h, k, v, c, _ in knobs]


def help_part(part: str) -> str:
    """A generated part of `python -m swiftops --help` (conf/hydra/help/swiftops.yaml):
    keys | groups | sweeps | runners. `$` is doubled: Hydra fills the template with string.Template."""
    if part == "keys":
        rows, last = [], None
        knobs = config_knobs()
        width = max(len(f"{k}={v}") for _, k, v, _ in knobs)
        for heading, key, value, meaning in knobs:
            if heading != last:
                rows.append(f"  -- {heading} --")
                last = heading
            rows.append(f"  {f'{key}={value}'.ljust(width)}  {meaning}")
        text = "\n".join(rows)
    elif part == "groups":
        from omegaconf import OmegaConf

        defaults = {}
        for entry in OmegaConf.load(conf_dir() / "config.yaml").get("defaults", []):
            if isinstance(entry, dict) or OmegaConf.is_dict(entry):
                defaults.update({str(k): v for k, v in entry.items()})
        rows = []
        for title, entries in listing():
            group = title.split(" ", 1)[0]
            if group in ("named", "hydra:"):
                continue
            options = [name.split("=", 1)[1] for name, _ in entries]
            default = defaults.get(group) or "none"
            line = f"{group}=" + " | ".join(options) + f"  (default: {default})"
            rows += textwrap.wrap(
                line, 108, initial_indent="  ", subsequent_indent="      ", break_on_hyphens=False
            )
        text = "\n".join(rows)
    elif part == "sweeps":
        sweeps = listing()[0][1]
        width = max((len(name) for name, _ in sweeps), default=0)
        text = "\n".join(f"  {name.ljust(width)}  {about}" for name, about in sweeps)
    elif part == "runners":
        entries = hydra_entries()
        width = max(len(name) for name, _ in entries)
        text = "\n".join(f"  {name.ljust(width)}  {about}" for name, about in entries)
    else:
        raise ValueError(f"unknown help part {part!r}; use keys, groups, sweeps or runners")
    return text.replace("$", "$$")


def main(argv: list[str] | None = None) -> int:
    for title, entries in listing():
        print(f"{title}:")
        width = max((len(name) for name, _ in entries), default=0)
        for name, text in entries:
            print(f"  {name.ljust(width)}  {text}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
