"""`python -m thinkserve` runs the CLI."""

from thinkserve.cli import main

main()
