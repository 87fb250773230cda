"""Training returns freed tensor memory to the system: glibc's mmap threshold is fixed at 1 MiB."""

import platform

import pytest

from raft.train.malloc import return_freed_memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_the_mmap_threshold_is_set_on_glibc():
    assert return_freed_memory() is True
