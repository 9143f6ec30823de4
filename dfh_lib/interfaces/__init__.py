"""Layer 6, how people use the library: the command line (:mod:`.cli`), the
book's dataset choice (:mod:`.book_data`), results tables (:mod:`.results`),
figures (:mod:`.viz`), widgets (:mod:`.widgets`) and the chapter-facing
namespaces (:mod:`.topics`). Imports every layer below; nothing imports it."""
