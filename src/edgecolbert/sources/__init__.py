"""Documents to index: folders of text files, JSON Lines, BEIR collections, and the indexing pipeline."""
