"""The console scripts defer Keras's GUI imports without breaking their later use."""
import importlib.util
import json
import subprocess
import sys

from nmt.cli import lazy_imports


def test_a_lazy_module_runs_on_first_attribute_access(tmp_path, monkeypatch):
    (tmp_path / "lazy_probe.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('ran').write_text('yes')\nVALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    finder = lazy_imports.LazyImportFinder(["lazy_probe"])
    monkeypatch.setattr(sys, "meta_path", [finder] + sys.meta_path)
    try:
        import lazy_probe
        assert not (tmp_path / "ran").exists()
        assert lazy_probe.VALUE == 7
        assert (tmp_path / "ran").read_text() == "yes"
    finally:
        sys.modules.pop("lazy_probe", None)


def test_the_finder_leaves_other_and_missing_modules_to_the_normal_finders():
    finder = lazy_imports.LazyImportFinder(["json", "no_such_module_anywhere"])
    assert finder.find_spec("json", None).loader.__class__.__name__ == "LazyLoader"
    assert lazy_imports.LazyImportFinder([]).find_spec("json", None) is None
    assert finder.find_spec("no_such_module_anywhere", None) is None


def test_translate_command_imports_no_pyplot_or_ipython_until_used():
    script = (
        "import sys, json\n"
        "import nmt.cli.translate\n"
        "before = {m: m in sys.modules\n"
        "          for m in ('tensorflow', 'matplotlib.figure', 'IPython.core')}\n"
        "import matplotlib\n"
        "matplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n"
        "figure = plt.figure()\n"
        "print(json.dumps({'before': before, 'figure': type(figure).__name__,\n"
        "                  'after': 'matplotlib.figure' in sys.modules}))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["before"]["tensorflow"]
    assert not seen["before"]["matplotlib.figure"]
    if importlib.util.find_spec("IPython") is not None:
        assert not seen["before"]["IPython.core"]
    assert seen["figure"] == "Figure" and seen["after"]
