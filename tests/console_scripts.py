"""The console scripts setup.cfg declares, as executables that run this checkout's code."""
import configparser
import os
import stat
import sys

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def console_scripts():
    """{name: "module:function"} from setup.cfg, in file order."""
    parser = configparser.ConfigParser()
    parser.read(os.path.join(REPO, "setup.cfg"))
    lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


def write_scripts(bin_dir):
    """An executable per console script in bin_dir, as pip would write it."""
    os.makedirs(bin_dir, exist_ok=True)
    for name, target in console_scripts().items():
        module, function = target.split(":")
        path = os.path.join(bin_dir, name)
        with open(path, "w") as f:
            f.write(f"#!{sys.executable}\nimport sys\nsys.argv[0] = {name!r}\n"
                    f"from {module} import {function}\n{function}()\n")
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)


def environment(bin_dir, **extra):
    """os.environ with bin_dir first on PATH and this checkout on PYTHONPATH."""
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=os.path.abspath(REPO))
    env.update(extra)
    return env
