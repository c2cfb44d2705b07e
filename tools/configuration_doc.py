"""Writes docs/configuration.md: every flag of every console script, by section.

    python -m tools.configuration_doc            # rewrite the file
    python -m tools.configuration_doc --check    # exit 1 if the file is out of date

Each command's flags are read from its --helpfull output (the entry points of
setup.cfg, run from this checkout); a flag shared by several commands with the
same description is one row.
"""
import collections
import configparser
import os
import re
import subprocess
import sys

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DOC = os.path.join(REPO, "docs", "configuration.md")
SECTIONS = ("general", "data", "model", "training", "decoding", "other")
HEADER = """# Configuration: every flag, by section

Written by `python -m tools.configuration_doc` from the commands themselves
(tests/cli/test_help.py checks that it matches them); `nmt-X --helpfull` prints the
same for one command.

A run's config is built as: the defaults of nmt/config.py < `--preset`
(nmt/presets.py; nmt-train's default is `default`) < `--config=FILE` (a JSON
file of config fields, such as a run's own `config.json`) < the flags given.
absl's `--flagfile=FILE` reads flags from a file, one per line, as if typed.
The decoding flags of the commands that load a model default to the values the
model dir was trained with.
"""


def console_scripts():
    """{name: module} of setup.cfg's console scripts, in file order."""
    parser = configparser.ConfigParser()
    parser.read(os.path.join(REPO, "setup.cfg"))
    lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    return {name.strip(): target.split(":")[0].strip()
            for name, target in (line.split("=") for line in lines)}


SECTION = re.compile(r"^(general|data|model|training|decoding|other):$")
FLAG = re.compile(r"^  (--\S+?): (.*)$")


def parse_helpfull(text):
    """[[section, flag, description]] from a command's --helpfull output."""
    rows, section = [], None
    for line in text.splitlines():
        if SECTION.match(line):
            section = line[:-1]
        elif section and FLAG.match(line):
            rows.append([section, *FLAG.match(line).groups()])
        elif section and rows and line.startswith("      "):
            rows[-1][2] += " " + line.strip()
    return rows


def helpfull(name, module):
    """Starts `NAME --helpfull` from this checkout, its output on a pipe."""
    code = f"import sys; sys.argv = [{name!r}, '--helpfull']; from {module} import run; run()"
    env = dict(os.environ, PYTHONPATH=os.path.abspath(REPO))
    # As a user's shell has it: with TF_CPP_MIN_LOG_LEVEL set, nmt.cli leaves TensorFlow's
    # import to the command, and the flags that import defines would go missing.
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)


def tables():
    """{command: [[section, flag, description]]}, the commands read two at a time."""
    result, names = {}, list(console_scripts().items())
    for i in range(0, len(names), 2):
        procs = {name: helpfull(name, module) for name, module in names[i:i + 2]}
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=600)
            if proc.returncode:
                raise SystemExit(f"{name} --helpfull failed")
            result[name] = parse_helpfull(out)
    return result


def markdown(command_tables):
    rows = collections.defaultdict(list)  # (section, flag, description) -> commands
    for command, table in command_tables.items():
        for section, flag, description in table:
            rows[(section, flag, description)].append(command)
    lines = [HEADER]
    for section in SECTIONS:
        keys = sorted((k for k in rows if k[0] == section),
                      key=lambda k: (re.sub(r"^--(\[no\])?", "", k[1]), k[2]))
        if not keys:
            continue
        lines += [f"## {section}", "", "| flag | commands | description |", "| --- | --- | --- |"]
        for key in keys:
            _, flag, description = key
            commands = ("every command" if len(rows[key]) == len(command_tables)
                        else ", ".join(rows[key]))
            lines.append(f"| `{flag}` | {commands} | {description.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


def main(argv):
    text = markdown(tables())
    if "--check" in argv:
        with open(DOC, encoding="utf-8") as f:
            if f.read() != text:
                raise SystemExit(f"{DOC} is out of date: run python -m tools.configuration_doc")
        return
    with open(DOC, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main(sys.argv)
