"""Layer 6, how people use the library: the command line (:mod:`.cli`, with
:mod:`.gan_cli`, :mod:`.fetch_cli`, :mod:`.search_cli`), the book's dataset
choice (:mod:`.book_data`), results tables (:mod:`.results`), figures
(:mod:`.viz`), widgets (:mod:`.widgets`: precomputed; :mod:`.live`: training
with a reader's settings) and the chapter-facing namespaces (:mod:`.topics`).
Imports every layer below; nothing imports it."""
