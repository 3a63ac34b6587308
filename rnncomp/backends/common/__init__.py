"""What the numba-cpu and numba-cuda printers share, so that neither imports the other.

writer.py (indented source lines tagged with the IR node they compute, comment and name escaping),
values.py (where a value lives in generated code, the generated module's record), scalars.py and
views.py (how an elementwise op and a view are spelled in Python), cache.py (the on-disk cache of
generated modules, with entry_files.py for its files, numba_files.py for Numba's files and their
manifest, in_memory.py for when no cache can be used), binding.py (a call's dims and trip counts) and
failures.py (a failing line traced back to its IR node); errors.py holds LoweringError. Of these only
cache.py and numba_files.py import Numba.
"""
