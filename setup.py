"""Build hook: the wheel carries a copy of the top-level recipes/, ds_configs/ and dataset_info.json
(as llamafactory_ext/_shipped/), so `pip install .` runs the demo and `llamafactory-ext recipes`
from any folder. In a checkout (editable install) the package reads the top-level folders."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("recipes", "ds_configs", "dataset_info.json")


class BuildWithShipped(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "llamafactory_ext" / "_shipped"
        for name in SHIPPED:
            src, dest = ROOT / name, target / name
            if src.is_dir():
                shutil.copytree(src, dest, dirs_exist_ok=True)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)


setup(cmdclass={"build_py": BuildWithShipped})
