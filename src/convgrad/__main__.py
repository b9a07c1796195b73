"""`python -m convgrad` runs the command line."""

from convgrad.cli import main

main()
