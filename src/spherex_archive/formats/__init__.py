"""Output formats of query answers, written as streams from the model's column metadata:
VOTable (TABLEDATA and BINARY2) in ``votable``, CSV, TSV and HTML in ``tabular``."""
