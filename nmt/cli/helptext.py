"""--help, --helpfull and --version for every command.

--help prints the command's purpose and example (its docstring up to the end of
the first example) and its main flags by section; --helpfull the whole docstring
and every flag, absl's own under "other". Both exit 0. Each flag gets one
description, which ends with its default; tools/configuration_doc.py turns
--helpfull into docs/configuration.md.
"""
import sys
import textwrap

from absl import flags

import nmt
from nmt.cli import flags as flags_lib

OTHER = "other"
HELP_ARGS = {"--help", "-help", "-h", "--helpshort", "-?"}
FULL_ARGS = {"--helpfull", "-helpfull"}


def _describe(flag):
    """The flag's one-line description, ending with its default."""
    text = " ".join(flag.help.split())
    if "default:" in text or flag.name == "version" or text.startswith("Alias for"):
        return text
    if flag.default is None:
        return f"{text} ({'required' if _required(flag) else 'default: none'})"
    default = flag.default_as_str if flag.default_as_str is not None else repr(flag.default)
    return f"{text} (default: {default.strip(chr(39))})"


def _required(flag):
    """Whether absl's mark_flag_as_required was applied to the flag."""
    return any("must have a value other than None" in str(getattr(v, "message", ""))
               for v in flag.validators)


def rows(flag_values=flags.FLAGS, names=None):
    """[(section title, flag name, description, flag)] of the named (or all) flags, by
    section, then name."""
    order = list(flags_lib.SECTION_TITLES) + [OTHER]
    seen, result = set(), []
    for flag in (flag_values[name] for name in flag_values):
        if flag.name in seen or (names is not None and flag.name not in names):
            continue
        seen.add(flag.name)
        section = flags_lib.SECTIONS.get(flag.name, OTHER)
        result.append((order.index(section), section, flag.name, _describe(flag), flag))
    result.sort(key=lambda r: (r[0], r[2]))
    return [(flags_lib.SECTION_TITLES.get(s, OTHER), n, d, f) for _, s, n, d, f in result]


def _usage_name(flag):
    return f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"


def format_flags(flag_rows):
    lines, section = [], None
    for title, _, description, flag in flag_rows:
        if title != section:
            section = title
            lines.append(f"\n{title}:")
        lines.append(textwrap.fill(description, 79, initial_indent=f"  {_usage_name(flag)}: ",
                                   subsequent_indent="      "))
    return "\n".join(lines)


def summary(doc):
    """The docstring's purpose and first example: up to the first blank line after an
    indented line."""
    out, in_example = [], False
    for line in (doc or "").strip().splitlines():
        if in_example and not line.strip():
            break
        in_example = in_example or line.startswith("    ")
        out.append(line)
    return "\n".join(out)


def handle(program, doc, main_flags, argv=None, flag_values=flags.FLAGS):
    """Prints --version, --help or --helpfull and exits 0 if argv asks for one."""
    args = set((argv or sys.argv)[1:])
    if "--version" in args:
        print(f"{program} (nmt-lstm) {nmt.__version__}")
        sys.exit(0)
    if args & FULL_ARGS:
        print(doc.strip() + "\n" + format_flags(rows(flag_values)))
        sys.exit(0)
    if args & HELP_ARGS:
        names = set(main_flags) | {n for n, s in flags_lib.SECTIONS.items() if s == "general"}
        names &= set(flag_values)
        print(summary(doc) + "\n\nMain flags:" + format_flags(rows(flag_values, names))
              + "\n\n--helpfull lists every flag; --flagfile=FILE reads flags from FILE, "
              "one per line.")
        sys.exit(0)

