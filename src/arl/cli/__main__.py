"""``python -m arl.cli``: the same as ``arl-run``."""

from arl.cli.app import main

if __name__ == "__main__":
    main()
