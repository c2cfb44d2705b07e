"""--help, --helpfull and --version of every console script in setup.cfg, and
docs/configuration.md against the commands' own flags."""
import os
import re
import subprocess

import pytest

from tests.console_scripts import console_scripts, environment, write_scripts

import nmt

from tools import configuration_doc

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
COMMANDS = list(console_scripts())
NOISE = ("oneDNN", "cuda", "cpu_feature_guard", "absl::InitializeLog")
SECTION = re.compile(r"^(general|data|model|training|decoding|other):$")


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("bin"))
    write_scripts(path)
    return path


def run_all(bin_dir, *args, env=None):
    """{command: CompletedProcess} of every console script run with args, three at a time."""
    env = env or environment(bin_dir)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it
    results = {}
    for i in range(0, len(COMMANDS), 3):
        procs = {name: subprocess.Popen([os.path.join(bin_dir, name), *args], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
                 for name in COMMANDS[i:i + 3]}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=600)
            results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


@pytest.fixture(scope="module")
def helps(bin_dir):
    return run_all(bin_dir, "--help")


def test_help_exits_0_with_purpose_example_and_sections(helps):
    for name, result in helps.items():
        assert result.returncode == 0, (name, result.stderr)
        lines = result.stdout.splitlines()
        assert lines[0].startswith(f"{name}: "), (name, lines[0])  # the purpose
        assert any(line.startswith(f"    {name} --") for line in lines), name  # an example
        sections = [line for line in lines if SECTION.match(line)]
        assert "general:" in sections and len(sections) >= 2, (name, sections)


def test_help_keeps_tensorflow_start_up_lines_off_the_terminal(helps):
    for name, result in helps.items():
        for word in NOISE:
            assert word not in result.stderr, (name, result.stderr)


@pytest.fixture(scope="module")
def helpfulls(bin_dir):
    return run_all(bin_dir, "--helpfull")


def test_every_flag_has_a_description_with_its_default(helpfulls):
    for name, result in helpfulls.items():
        assert result.returncode == 0, (name, result.stderr)
        rows = configuration_doc.parse_helpfull(result.stdout)
        assert len(rows) > 5, name
        flags = re.findall(r"^  --", result.stdout, flags=re.M)
        assert len(rows) == len(flags), name  # every flag line is in a section
        for section, flag, description in rows:
            words = re.sub(r"\(default: .*?\)|\(required\)", "", description).split()
            assert len(words) >= 2, (name, flag, description)
            if section != "other" and flag != "--[no]version" and "Alias" not in description:
                assert re.search(r"\((default: .*|required)\)\.?$", description), \
                    (name, flag, description)


def test_version_on_every_command(bin_dir):
    for name, result in run_all(bin_dir, "--version").items():
        assert result.returncode == 0, (name, result.stderr)
        assert result.stdout.strip() == f"{name} (nmt-lstm) {nmt.__version__}"


def test_configuration_doc_matches_the_commands(helpfulls):
    tables = {name: configuration_doc.parse_helpfull(helpfulls[name].stdout)
              for name in COMMANDS}
    with open(configuration_doc.DOC, encoding="utf-8") as f:
        assert f.read() == configuration_doc.markdown(tables), \
            "docs/configuration.md is out of date: run python -m tools.configuration_doc"


def test_the_configuration_doc_tool_reads_the_flags_a_user_sees(helpfulls):
    """tools/configuration_doc.py, which the message above asks to run, must see every
    command's flags as a user's shell does, or the file it writes fails the test."""
    from_commands = {name: configuration_doc.parse_helpfull(helpfulls[name].stdout)
                     for name in COMMANDS}
    assert configuration_doc.tables() == from_commands
