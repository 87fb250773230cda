import sys

from raft.cli import main

if __name__ == "__main__":  # vLLM starts its workers with spawn, which imports this module again
    sys.exit(main())
