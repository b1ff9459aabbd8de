from setuptools import find_packages, setup

setup(
    name="iss",
    version="0.1.0",
    description="Smart ISS Posts: learn, cluster and explore large unlabelled picture collections",
    packages=find_packages(include=["iss", "iss.*"]),
    package_data={"iss.visualization": ["assets/*", "templates/*.html"], "iss.search": ["templates/*.html"]},
    python_requires=">=3.10",
    # optional: HEIC/HEIF pictures (iPhone photos); without it they are listed as skipped with this hint
    extras_require={"heic": ["pillow-heif>=1.0,<2"]},
    entry_points={"console_scripts": ["iss=iss.cli:app"]},
)
