"""``python -m dfh_lib ...``: the command line (:mod:`dfh_lib.interfaces.cli`)."""
from dfh_lib.interfaces.cli import main

if __name__ == "__main__":
    main()
