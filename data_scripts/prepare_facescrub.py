"""Download DDH's 32x32 facescrub splits into <data-dir>/facescrub and verify them.

    python data_scripts/prepare_facescrub.py --data-dir ~/dfh_data

See _ddh.py for what is fetched and checked (same as `python -m dfh_lib fetch <name>`).
"""
from _ddh import main

if __name__ == "__main__":
    main("facescrub")
