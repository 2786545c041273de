"""Fixtures of the engine tests: the model (written once per run) and a scratch directory."""

from __future__ import annotations

import os

import pytest

from engine_support import remove, workdir, write_model


@pytest.fixture(scope="session")
def model_dir():
    path = workdir("kvtier-engine-model-")
    try:
        yield write_model(os.path.join(path, "llama-tiny"))
    finally:
        remove(path)


@pytest.fixture
def scratch():
    path = workdir("kvtier-engine-")
    try:
        yield path
    finally:
        remove(path)
