"""vLLM's CPU engine is given every CPU this process may use (its 'auto' binding leaves a 2-CPU
machine one thread), unless the user set its thread variables."""

import os

import pytest

from raft.engines.vllm import cpu_threads_env, parse_cpus


def test_every_allowed_cpu_is_bound_and_none_reserved_by_default():
    env = cpu_threads_env({})
    assert parse_cpus(env["VLLM_CPU_OMP_THREADS_BIND"]) == sorted(os.sched_getaffinity(0))
    assert env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"


def test_the_users_settings_are_kept():
    assert cpu_threads_env({"VLLM_CPU_OMP_THREADS_BIND": "0-3", "VLLM_CPU_NUM_OF_RESERVED_CPU": "1"}) == {}


@pytest.mark.parametrize("spec, cpus", [("0-3,6", [0, 1, 2, 3, 6]), ("1", [1]), ("0-1|2-3", [0, 1]), ("auto", [])])
def test_parse_cpus(spec, cpus):
    assert parse_cpus(spec) == cpus
