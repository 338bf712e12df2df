"""The wheel users install contains the package and its templates (a missing package-data entry
fails here, not on a user's machine)."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
def test_wheel_installs_into_a_fresh_venv_with_templates(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
                    str(ROOT)], check=True, timeout=300)
    wheel = next(dist.glob("asgi_monitoring-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "asgi_monitor/templates/base.html" in names
    assert "asgi_monitor/__init__.py" in names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True,
                   timeout=300)
    probe = (
        "import asgi_monitor, pathlib;"
        "from asgi_monitor.web.templating import environment;"
        "t = environment().get_template('base.html');"
        "print(pathlib.Path(asgi_monitor.__file__).parent);"
        "print('<' in t.render())"
    )
    out = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True,
                         cwd=tmp_path, timeout=120).stdout.split()
    assert Path(out[0]).is_relative_to(env_dir)  # imported from the venv, not the checkout
    assert out[1] == "True"


def test_a_source_checkout_finds_the_repository_templates() -> None:
    # `python -m asgi_monitor demo` in the repository, or an editable install, imports the
    # package from the checkout, where templates/ sits beside asgi_monitor/, not inside it.
    probe = (
        "import asgi_monitor, pathlib;"
        "from asgi_monitor.web.templating import environment, template_dir;"
        "environment().get_template('dashboard.html');"
        "print(pathlib.Path(asgi_monitor.__file__).parent);"
        "print(template_dir())"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True, cwd=ROOT, timeout=120).stdout.split()
    assert Path(out[0]) == ROOT / "asgi_monitor"
    assert Path(out[1]) == ROOT / "templates"
    assert (Path(out[1]) / "static").is_dir()
