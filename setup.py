import re
from pathlib import Path

from setuptools import find_packages, setup


def requirements(path: Path = Path(__file__).with_name("requirements.txt")) -> tuple[list[str], dict[str, list[str]]]:
    """``install_requires`` and ``extras_require`` from requirements.txt, their one owner: the lines before the
    first ``# [name]`` header are the runtime requirements, each header starts the optional group iss[name]."""
    groups: dict = {None: []}
    name = None
    for line in path.read_text().splitlines():
        header = re.match(r"#\s*\[(\w+)\]", line)
        if header:
            name = header.group(1)
            groups.setdefault(name, [])
        elif line.split("#")[0].strip():
            groups[name].append(line.split("#")[0].strip())
    return groups.pop(None), groups


install_requires, extras_require = requirements()

setup(
    name="iss",
    version="0.1.0",
    description="Smart ISS Posts: learn, cluster and explore large unlabelled picture collections",
    packages=find_packages(include=["iss", "iss.*"]),
    package_data={"iss.visualization": ["assets/*", "templates/*.html"], "iss.search": ["templates/*.html"]},
    python_requires=">=3.10",
    install_requires=install_requires,
    # test, bench, heic (HEIC/HEIF pictures; without it they are listed as skipped with this hint)
    extras_require=extras_require,
    entry_points={"console_scripts": ["iss=iss.cli:app"]},
)
