"""ADQL 2.1: parse a query into a typed syntax tree (tree.py) and write a tree back as ADQL.

>>> from spherex_archive.adql import parse, to_adql
>>> query = parse("select top 5 ra, dec from ivoa.obscore where s_ra > 10")
>>> to_adql(query)
'SELECT TOP 5 ra, dec FROM ivoa.obscore WHERE s_ra > 10'
"""

from . import tree
from .errors import AdqlSyntaxError
from .parser import parse
from .unparse import to_adql

__all__ = ["AdqlSyntaxError", "parse", "to_adql", "tree"]
