"""Download DDH's 32x32 youtube_faces splits into <data-dir>/youtube_faces and verify them.

    python data_scripts/prepare_youtube_faces.py --data-dir ~/dfh_data

See _ddh.py for what is fetched and checked (same as `python -m dfh_lib fetch <name>`).
"""
from _ddh import main

if __name__ == "__main__":
    main("youtube_faces")
