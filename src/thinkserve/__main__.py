"""`python -m thinkserve` runs the CLI."""

from thinkserve.cli import main

# Guarded: engines that start processes with "spawn" (vLLM) import this module again in each child.
if __name__ == "__main__":
    main()
